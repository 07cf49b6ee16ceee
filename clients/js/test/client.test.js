// Runs against a real `sop serve` started by the Rust test `js_client` (crates/sop-cli),
// which sets SOP_URL and creates the SOPs `hello` (one step echoing $who) and `gate` (an
// approval before its step).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import sopRunner, { createClient, SopError } from '../index.js';

const client = createClient({ url: process.env.SOP_URL });

async function until(what, check) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the default client reads SOP_URL', async () => {
  const sops = await sopRunner.list();
  assert.deepEqual(sops.map((s) => s.name).sort(), ['gate', 'hello']);
});

test('execute, getStatus, runs and metrics', async () => {
  const queued = await client.execute('hello', { vars: { who: 'js' } });
  assert.equal(queued.status, 'queued');
  assert.match(queued.run_id, /^[0-9a-f]{12}$/);
  const done = await until('the run to succeed', async () => {
    const s = await client.getStatus('hello');
    return s.run_id === queued.run_id && s.status === 'success' ? s : null;
  });
  assert.equal(done.steps[0].output, 'hello js\n');
  assert.deepEqual(done.vars, { who: 'js' });
  const runs = await client.runs({ sop: 'hello', status: 'success', limit: 5 });
  assert.ok(runs.some((r) => r.id === queued.run_id));
  assert.equal((await client.run(queued.run_id)).status, 'success');
  const metrics = await client.metrics('hello');
  assert.ok(metrics.overall.all.by_status.success >= 1);
  assert.equal(metrics.overall.all.success_rate, 1);
});

test('approve and reject by SOP name, cancel', async () => {
  const a = await client.execute('gate');
  await until('the run to wait', async () => (await client.run(a.run_id)).status === 'waiting_approval');
  const approved = await client.approve('gate', { comment: 'from js' });
  assert.equal(approved.run_id, a.run_id);
  const doc = await until('the run to end', async () => {
    const d = await client.run(a.run_id);
    return d.status === 'success' ? d : null;
  });
  assert.equal(doc.approvals[0].comment, 'from js');
  assert.equal(doc.approvals[0].channel, 'api');

  const b = await client.execute('gate');
  await until('the run to wait', async () => (await client.run(b.run_id)).status === 'waiting_approval');
  const rejected = await client.reject('gate', 'not now');
  assert.deepEqual(rejected, { run_id: b.run_id, status: 'rejected' });

  const c = await client.execute('gate');
  await until('the run to wait', async () => (await client.run(c.run_id)).status === 'waiting_approval');
  const cancelled = await client.cancel('gate');
  assert.equal(cancelled.run_id, c.run_id);
  assert.equal(cancelled.status, 'cancelled');
});

test('several runs waiting: the error names them, and runId picks one', async () => {
  const a = await client.execute('gate', { skipApproval: false });
  const b = await client.execute('gate');
  for (const r of [a, b]) {
    await until('the run to wait', async () => (await client.run(r.run_id)).status === 'waiting_approval');
  }
  await assert.rejects(client.approve('gate'), (e) => e.code === 'conflict');
  await assert.rejects(client.reject('gate', 'which one?'), (e) => e.code === 'conflict' && e.message.includes(a.run_id));
  assert.equal((await client.approve('gate', { runId: a.run_id })).run_id, a.run_id);
  assert.deepEqual(await client.reject('gate', 'not this one', { runId: b.run_id }), { run_id: b.run_id, status: 'rejected' });
  // skipApproval (the local user is admin without tokens): no gate.
  const c = await client.execute('gate', { skipApproval: true, priority: 'high' });
  const done = await until('the run to end', async () => {
    const d = await client.run(c.run_id);
    return d.status === 'success' ? d : null;
  });
  assert.equal(done.skip_approval, true);
  assert.equal(done.priority, 'high');
});

test('errors carry the API code and status', async () => {
  await assert.rejects(client.reject('nope', 'x'), (e) => e.status === 404 && e.code === 'not_found');
  await assert.rejects(client.getStatus('../metrics'), (e) => e.code === 'bad_request');
  await assert.rejects(createClient({ url: 'http://127.0.0.1:1' }).list(), (e) => e.code === 'network' && e.status === 0);
  await assert.rejects(client.execute('nope'), (e) => {
    assert.ok(e instanceof SopError);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'not_found');
    assert.match(e.message, /no SOP named `nope`/);
    return true;
  });
  await assert.rejects(client.reject('gate', 'nothing waits'), (e) => e.code === 'not_waiting');
  await assert.rejects(client.execute('hello', { vars: { PATH: '/tmp' } }), (e) => e.code === 'invalid_vars');
});

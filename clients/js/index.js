// The JavaScript client of `sop serve` (docs/API.md): the calls of the original request —
// execute, list, getStatus, cancel — plus approve, reject, runs and metrics. No
// dependencies: `fetch` (Node.js 18 and later; in a browser, from a page the daemon
// serves: it sends no CORS headers).

/** An error answer of the API: `{"error": {"code", "message"}}` with its HTTP status. */
export class SopError extends Error {
  constructor(status, code, message, options) {
    super(message, options);
    this.name = 'SopError';
    this.status = status;
    this.code = code;
  }
}

/**
 * A client of one daemon.
 * @param {{url?: string, token?: string, fetch?: typeof fetch}} [options]
 */
export function createClient(options = {}) {
  // Read at each call unless given: the default client sees an environment set up after
  // the import (a `.env` loader, a test).
  const env = () => (typeof process !== 'undefined' && process.env ? process.env : {});
  const base = () => (options.url ?? env().SOP_URL ?? 'http://127.0.0.1:7311').replace(/\/+$/, '');
  const token = () => options.token ?? env().SOP_TOKEN;
  const doFetch = options.fetch ?? ((...args) => globalThis.fetch(...args));

  async function call(method, path, body) {
    const headers = { accept: 'application/json' };
    const bearer = token();
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let answer;
    try {
      answer = await doFetch(base() + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw new SopError(0, 'network', `${method} ${base()}${path}: ${cause.message}`, { cause });
    }
    const text = await answer.text();
    let json;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = undefined;
    }
    if (!answer.ok) {
      const error = json && json.error ? json.error : {};
      throw new SopError(
        answer.status,
        error.code ?? 'http_error',
        error.message ?? `${method} ${path}: HTTP ${answer.status}`,
      );
    }
    if (json === undefined) {
      throw new SopError(answer.status, 'bad_response', `${method} ${path}: the answer is not JSON (is ${base()} a sop daemon?)`);
    }
    return json;
  }

  /** A SOP name as the server takes it; anything else would name another endpoint. */
  function name(n) {
    if (typeof n !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(n)) {
      throw new SopError(400, 'bad_request', `\`${n}\` is not a SOP name: expected ^[a-z0-9][a-z0-9._-]{0,63}$`);
    }
    return n;
  }

  const seg = (s) => encodeURIComponent(String(s));

  function query(params) {
    const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null);
    if (pairs.length === 0) return '';
    return '?' + pairs.map(([k, v]) => `${seg(k)}=${seg(Array.isArray(v) ? v.join(',') : v)}`).join('&');
  }

  /** The run of `sop` that waits for a decision (by `runId` if given). */
  async function waitingRun(sop, runId) {
    if (runId) return runId;
    const waiting = (await call('GET', '/api/approvals')).filter((a) => a.sop === sop);
    if (waiting.length === 1) return waiting[0].run_id;
    if (waiting.length === 0) {
      await call('GET', `/api/sops/${seg(name(sop))}`); // a SOP that does not exist: 404
      throw new SopError(409, 'not_waiting', `no run of \`${sop}\` is waiting for a decision`);
    }
    const ids = waiting.map((a) => a.run_id).join(', ');
    throw new SopError(409, 'conflict', `${waiting.length} runs of \`${sop}\` are waiting; pass runId (one of ${ids})`);
  }

  return {
    /** Queues a run: `{run_id, status}`. */
    async execute(sop, { vars = {}, skipApproval = false, priority, force = false } = {}) {
      const body = { vars, skip_approval: skipApproval, force };
      if (priority !== undefined) body.priority = priority;
      return call('POST', `/api/sops/${seg(name(sop))}/execute`, body);
    },
    /** The SOPs, with the status of their newest run. */
    list() {
      return call('GET', '/api/sops');
    },
    /** The newest run of a SOP, as its audit document. */
    async getStatus(sop) {
      return call('GET', `/api/sops/${seg(name(sop))}/status`);
    },
    /** Cancels the active run of a SOP: `{run_id, status}`. */
    async cancel(sop) {
      return call('POST', `/api/sops/${seg(name(sop))}/cancel`, {});
    },
    /** Approves the run of `sop` that waits (or `runId`): `{run_id, status}`. */
    approve(sop, { runId, comment, set } = {}) {
      const body = { sop };
      if (runId !== undefined) body.run_id = runId;
      if (comment !== undefined) body.comment = comment;
      if (set !== undefined) body.set = set;
      return call('POST', '/api/sop/approve', body);
    },
    /** Rejects the run of `sop` that waits (or `runId`) with a reason: `{run_id, status}`. */
    async reject(sop, reason, { runId } = {}) {
      const id = await waitingRun(sop, runId);
      return call('POST', `/api/runs/${seg(id)}/reject`, { reason });
    },
    /** Runs, newest first. */
    runs({ sop, status, limit } = {}) {
      return call('GET', '/api/runs' + query({ sop, status, limit }));
    },
    /** One run's document. */
    run(id) {
      return call('GET', `/api/runs/${seg(id)}`);
    },
    /** Metrics (all SOPs, or one). */
    metrics(sop) {
      return call('GET', '/api/metrics' + query({ sop }));
    },
  };
}

/** A client of the daemon at `SOP_URL` (default `http://127.0.0.1:7311`) with `SOP_TOKEN`,
 * both read at each call. */
export const sopRunner = createClient();

export default sopRunner;

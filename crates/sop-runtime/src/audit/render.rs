//! Rendering the audit file at the cost of copying its bytes: each step record's pretty
//! JSON is kept, already indented for its place in the file, and rendered again only when
//! the record changed since this process last wrote the run's file; the rest of the
//! document (a few keys, the decisions, the totals) is rendered each time.
//!
//! The kept fragments live in a small process-wide cache, bounded in runs and bytes, least
//! recently written run out first; a run that ended leaves it.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use sop_core::run::{Run, StepRecord};

use super::doc::{Head, StepDoc, Tail};

/// Runs whose fragments are kept: more than the runs one process moves at once.
const MAX_RUNS: usize = 16;
/// Bytes of fragments and the records they were rendered from kept for all runs.
const MAX_BYTES: usize = 64 << 20;

/// Indentation of an array element or object value at depth 2 (`steps[i]`, `gates.x`).
const ITEM_PAD: &[u8] = b"    ";

static CACHE: Mutex<Cache> = Mutex::new(Cache::new());

/// The audit file of `run`: its document, pretty-printed, with a final newline.
pub(super) fn file(run: &Run) -> io::Result<Vec<u8>> {
    let mut frags = lock().take(&run.id);
    // On an error `frags` is dropped, not put back: a fragment is never kept half-made.
    frags.refresh(run)?;
    let mut out = Vec::with_capacity(frags.json_bytes + 1024 + 256 * run.approvals.len());
    splice(run, &frags, &mut out)?;
    if !run.status.is_terminal() {
        lock().put(&run.id, frags);
    }
    Ok(out)
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // The cache holds whole entries only (see `file`): a panic elsewhere cannot leave one
    // inconsistent.
    CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The document of `run` from its head, the fragments of its records and its tail, in the
/// order and layout `serde_json::to_writer_pretty(&Document::of(run))` gives.
fn splice(run: &Run, frags: &Frags, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &Head::of(run))?;
    // `{\n  "sop": ...\n}`: reopen the object to go on.
    debug_assert!(out.ends_with(b"\n}"));
    out.truncate(out.len() - 2);
    out.extend_from_slice(b",\n  \"steps\": ");
    list(out, frags.steps.iter().map(|f| &f.json[..]));
    out.extend_from_slice(b",\n  \"rollback\": ");
    list(out, frags.rollback.iter().map(|f| &f.json[..]));
    out.extend_from_slice(b",\n  \"gates\": ");
    if frags.gates.is_empty() {
        out.extend_from_slice(b"{}");
    } else {
        out.push(b'{');
        for (i, (name, frag)) in frags.gates.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            out.extend_from_slice(ITEM_PAD);
            serde_json::to_writer(&mut *out, name)?;
            out.extend_from_slice(b": ");
            out.extend_from_slice(&frag.json);
        }
        out.extend_from_slice(b"\n  }");
    }
    // `{\n  "approvals": ...\n}`: its `{` becomes the `,` that goes on from the gates.
    let tail = out.len();
    serde_json::to_writer_pretty(&mut *out, &Tail::of(run))?;
    out[tail] = b',';
    out.push(b'\n');
    Ok(())
}

/// A pretty array at depth 1 of elements already indented for depth 2.
fn list<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a [u8]>) {
    if items.len() == 0 {
        out.extend_from_slice(b"[]");
        return;
    }
    out.push(b'[');
    for (i, item) in items.enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        out.extend_from_slice(ITEM_PAD);
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"\n  ]");
}

/// The kept fragments of one run's records, by slot: main step index, rollback step
/// index, gate name.
#[derive(Default)]
struct Frags {
    steps: Vec<Frag>,
    rollback: Vec<Frag>,
    gates: BTreeMap<String, Frag>,
    /// Bytes of all fragments.
    json_bytes: usize,
    /// Bytes kept alive: fragments and the records they stand for.
    bytes: usize,
}

impl Frags {
    /// Makes every fragment that of the record now in its slot, and drops the slots the
    /// run no longer has.
    fn refresh(&mut self, run: &Run) -> io::Result<()> {
        refresh_list(&mut self.steps, &run.steps)?;
        refresh_list(&mut self.rollback, &run.rollback)?;
        self.gates.retain(|name, _| run.gates.contains_key(name));
        for (name, rec) in &run.gates {
            match self.gates.get_mut(name) {
                Some(frag) => frag.refresh(rec)?,
                None => {
                    self.gates.insert(name.clone(), Frag::new(rec)?);
                }
            }
        }
        let all = || {
            self.steps
                .iter()
                .chain(&self.rollback)
                .chain(self.gates.values())
        };
        self.json_bytes = all().map(|f| f.json.len() + ITEM_PAD.len() + 2).sum();
        self.bytes = all().map(Frag::bytes).sum();
        Ok(())
    }
}

fn refresh_list(frags: &mut Vec<Frag>, records: &[Arc<StepRecord>]) -> io::Result<()> {
    frags.truncate(records.len());
    for (i, rec) in records.iter().enumerate() {
        match frags.get_mut(i) {
            Some(frag) => frag.refresh(rec)?,
            None => frags.push(Frag::new(rec)?),
        }
    }
    Ok(())
}

/// A record and its pretty JSON, indented for depth 2.
struct Frag {
    record: Arc<StepRecord>,
    json: Vec<u8>,
}

impl Frag {
    fn new(rec: &Arc<StepRecord>) -> io::Result<Self> {
        let mut json = Vec::new();
        render_record(rec, &mut json)?;
        Ok(Frag {
            record: Arc::clone(rec),
            json,
        })
    }

    /// Renders `rec` again unless it equals the record the fragment was made from. The same
    /// allocation is the same record: while the fragment holds it, nobody can change it in
    /// place (`Arc::make_mut` copies a shared record) nor free it for another to take its
    /// address.
    fn refresh(&mut self, rec: &Arc<StepRecord>) -> io::Result<()> {
        if Arc::ptr_eq(&self.record, rec) {
            return Ok(());
        }
        if *self.record != **rec {
            self.json.clear();
            render_record(rec, &mut self.json)?;
        }
        // Equal or rendered anew: hold the newest copy, so the next check is a pointer's.
        self.record = Arc::clone(rec);
        Ok(())
    }

    fn bytes(&self) -> usize {
        let r = &self.record;
        std::mem::size_of::<Self>()
            + std::mem::size_of::<StepRecord>()
            + self.json.capacity()
            + r.title.capacity()
            + r.output.capacity()
            + r.reason.as_ref().map_or(0, String::capacity)
    }
}

fn render_record(rec: &StepRecord, out: &mut Vec<u8>) -> io::Result<()> {
    let mut ser = serde_json::Serializer::pretty(Indent { out, pad: ITEM_PAD });
    StepDoc::of(rec).serialize(&mut ser)?;
    Ok(())
}

/// Writes pretty JSON one level deeper: `pad` after each newline. JSON strings hold no raw
/// newline, so every newline is the formatter's.
struct Indent<'a> {
    out: &'a mut Vec<u8>,
    pad: &'static [u8],
}

impl Write for Indent<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            self.out.extend_from_slice(&buf[..=nl]);
            self.out.extend_from_slice(self.pad);
            buf = &buf[nl + 1..];
        }
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Kept fragments by run, least recently written first.
struct Cache {
    runs: Vec<(String, Frags)>,
}

impl Cache {
    const fn new() -> Self {
        Cache { runs: Vec::new() }
    }

    /// The fragments kept for `run_id` (none if there are none), out of the cache.
    fn take(&mut self, run_id: &str) -> Frags {
        self.runs
            .iter()
            .position(|(id, _)| id == run_id)
            .map(|i| self.runs.remove(i).1)
            .unwrap_or_default()
    }

    /// Keeps `frags` as the most recently written, then drops the least recently written
    /// runs while there are too many runs or bytes.
    fn put(&mut self, run_id: &str, frags: Frags) {
        self.runs.retain(|(id, _)| id != run_id);
        if frags.bytes > MAX_BYTES {
            return;
        }
        self.runs.push((run_id.to_string(), frags));
        let mut total: usize = self.runs.iter().map(|(_, f)| f.bytes).sum();
        let mut drop = 0;
        while self.runs.len() - drop > MAX_RUNS || total > MAX_BYTES {
            total -= self.runs[drop].1.bytes;
            drop += 1;
        }
        self.runs.drain(..drop);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sop_core::run::{Phase, RunStatus, StepStatus};

    use super::*;
    use crate::audit::doc::Document;
    use crate::audit::fixtures::{finish, moving, queued, shapes, step, T0};

    /// The file as rendered in one go from the typed document.
    fn whole(run: &Run) -> Vec<u8> {
        let mut body = serde_json::to_vec_pretty(&Document::of(run)).expect("serializes");
        body.push(b'\n');
        body
    }

    #[track_caller]
    fn same(run: &Run, what: &str) {
        let spliced = file(run).expect("renders");
        assert!(
            spliced == whole(run),
            "{what}: spliced\n{}\nwhole\n{}",
            String::from_utf8_lossy(&spliced),
            String::from_utf8_lossy(&whole(run))
        );
    }

    fn kept(run_id: &str) -> Option<usize> {
        lock()
            .runs
            .iter()
            .find(|(id, _)| id == run_id)
            .map(|(_, f)| f.steps.len() + f.rollback.len() + f.gates.len())
    }

    #[test]
    fn spliced_file_is_the_pretty_document_for_every_shape() {
        for (shape, mut run) in shapes() {
            run.id = format!("splice-{}", run.id);
            same(&run, shape);
            // Again, from the kept fragments.
            same(&run, shape);
        }
    }

    #[test]
    fn kept_fragments_follow_every_change_of_a_run() {
        let mut run = queued("follow", 4);
        same(&run, "queued");
        assert_eq!(kept("follow"), Some(4));
        run.status = RunStatus::Running;
        run.started_at = Some(T0 + 10);
        step(&mut run, 0).status = StepStatus::Running;
        same(&run, "step 1 running");
        finish(&mut run, 0, StepStatus::Success, "one\ntwo");
        same(&run, "step 1 done");
        // A copy of a record, equal but not the same allocation.
        run.steps[0] = Arc::new((*run.steps[0]).clone());
        same(&run, "step 1 copied");
        step(&mut run, 0).output.push('!');
        same(&run, "output of step 1 changed in place");
        finish(&mut run, 1, StepStatus::Failure, "bad \"thing\"");
        run.phase = Phase::Rollback;
        run.rollback = vec![Arc::clone(&run.steps[3])];
        same(&run, "rollback");
        Arc::make_mut(&mut run.rollback[0]).status = StepStatus::Running;
        same(&run, "rollback step running");
        run.gates.insert("b".into(), Arc::clone(&run.steps[2]));
        run.gates.insert("a".into(), Arc::clone(&run.steps[1]));
        same(&run, "two gates");
        run.gates.remove("a");
        Arc::make_mut(run.gates.get_mut("b").expect("gate")).attempts = 9;
        same(&run, "a gate gone, the other changed");
        run.steps.truncate(2);
        run.rollback.clear();
        same(&run, "fewer records");
        assert_eq!(kept("follow"), Some(3));
        run.status = RunStatus::Failure;
        run.completed_at = Some(T0 + 9_000);
        same(&run, "ended");
        assert_eq!(kept("follow"), None, "an ended run leaves the cache");
    }

    #[test]
    fn two_runs_under_one_id_never_share_a_fragment() {
        // Two homes may hold runs of one id; each rewrite checks every record.
        let a = moving("twins", 3);
        let mut b = moving("twins", 3);
        finish(&mut b, 1, StepStatus::Failure, "other");
        for _ in 0..2 {
            same(&a, "a");
            same(&b, "b");
        }
    }

    #[test]
    fn the_cache_is_bounded_in_runs_and_bytes() {
        let frags = |bytes| Frags {
            bytes,
            ..Frags::default()
        };
        let mut cache = Cache::new();
        for i in 0..MAX_RUNS + 4 {
            cache.put(&format!("r{i}"), frags(1));
        }
        assert_eq!(cache.runs.len(), MAX_RUNS);
        assert_eq!(
            cache.runs[0].0, "r4",
            "the least recently written went first"
        );
        assert_eq!(cache.take("r4").bytes, 1);
        assert!(cache.runs.iter().all(|(id, _)| id != "r4"), "taken out");

        cache.put("big", frags(MAX_BYTES / 2));
        cache.put("bigger", frags(MAX_BYTES / 2 + 1));
        assert!(
            cache.runs.iter().all(|(id, _)| id != "big"),
            "over the bytes"
        );
        assert_eq!(cache.runs.last().map(|(id, _)| id.as_str()), Some("bigger"));
        cache.put("bigger", frags(MAX_BYTES + 1));
        assert!(
            cache.runs.iter().all(|(id, _)| id != "bigger"),
            "too big to keep, and the old entry is gone"
        );
    }

    /// Render time per transition of a moving run (one record changed each time):
    /// `cargo test --release -p sop-runtime --lib audit::render -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn render_time_per_transition() {
        for n in [10, 100, 1000] {
            let mut run = moving(&format!("timing-{n}"), n);
            let iters = 2_000;
            let mut measure = |what: &str, render: &dyn Fn(&Run) -> Vec<u8>| {
                let t = Instant::now();
                let mut bytes = 0;
                for k in 0..iters {
                    step(&mut run, k % n).attempts += 1;
                    bytes = std::hint::black_box(render(&run)).len();
                }
                println!(
                    "{n:>5} steps, {bytes:>7} bytes, {what}: {:?}/transition",
                    t.elapsed() / iters as u32
                );
            };
            measure("value tree  ", &|run| {
                serde_json::to_vec_pretty(&crate::audit::document(run)).expect("renders")
            });
            measure("typed, whole", &whole);
            measure("cached      ", &|run| file(run).expect("renders"));
        }
    }
}

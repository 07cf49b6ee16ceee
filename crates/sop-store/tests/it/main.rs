//! Store behaviour stories (STYLE.md): each story is a function over `&dyn Store`, run
//! against a fresh `SQLite` store always and, once sop-store has a `PostgreSQL`
//! implementation, against it too when `SOP_TEST_DATABASE_URL` is set (see `backend.rs`).
//! `sqlite.rs` holds what only a file-backed store has: several handles on one file,
//! durability across reopen, schema versions.

mod backend;
mod fixture;
mod sqlite;
mod story_admission;
mod story_claim;
mod story_metrics;
mod story_owner;
mod story_runs;

use backend::each_backend;

#[test]
fn create_run_commits_and_load_run_returns_it() {
    each_backend(story_runs::create_and_load);
}

#[test]
fn update_run_commits_changes_and_a_refusal_writes_nothing() {
    each_backend(story_runs::update_and_refusal);
}

#[test]
fn events_since_returns_the_ledger_in_order() {
    each_backend(story_runs::event_ledger);
}

#[test]
fn output_is_appended_and_read_back_in_order() {
    each_backend(story_runs::output);
}

#[test]
fn change_counter_moves_on_every_committed_write() {
    each_backend(story_runs::change_counter);
}

#[test]
fn change_counter_moves_when_output_is_appended() {
    each_backend(story_runs::change_counter_on_output);
}

#[test]
fn active_runs_lists_non_terminal_runs_in_queue_order() {
    each_backend(story_runs::active_runs);
}

#[test]
fn list_runs_filters_and_find_run_ids_matches_prefixes() {
    each_backend(story_runs::listing);
}

#[test]
fn cooldown_refuses_with_the_anchoring_run_and_force_overrides() {
    each_backend(story_admission::cooldown);
}

#[test]
fn admission_drop_refuses_a_busy_sop() {
    each_backend(story_admission::drop_policy);
}

#[test]
fn admission_coalesce_hands_back_the_queued_or_running_run() {
    each_backend(story_admission::coalesce);
}

#[test]
fn admission_coalesce_accepts_while_a_slot_is_free() {
    each_backend(story_admission::coalesce_with_a_free_slot);
}

#[test]
fn claim_respects_max_concurrent_workers_and_queue_order() {
    each_backend(story_claim::limits_and_order);
}

#[test]
fn claim_preview_reports_what_claim_would_and_writes_nothing() {
    each_backend(story_claim::preview_matches_claim);
}

#[test]
fn behind_reports_the_blocked_runs_own_queue_position() {
    each_backend(story_claim::behind_position);
}

#[test]
fn a_claim_and_the_walk_to_the_first_step_are_one_commit() {
    each_backend(story_claim::claim_and_walk);
}

#[test]
fn waiting_runs_hold_no_slot_and_hold_policy_waits_for_them() {
    each_backend(story_claim::waiting_and_hold);
}

#[test]
fn acquire_has_exactly_one_winner_and_a_live_owner_keeps_the_run() {
    each_backend(story_owner::acquire_and_release);
}

#[test]
fn an_ended_run_has_no_owner_and_releasing_it_writes_nothing() {
    each_backend(story_owner::an_ended_run_has_no_owner);
}

#[test]
fn metric_facts_read_runs_records_and_suppressed_triggers() {
    each_backend(story_metrics::facts_of_runs_and_suppressions);
}

#[test]
fn the_notifier_reads_the_ledger_in_order_and_keeps_its_place() {
    each_backend(story_metrics::ledger_for_the_notifier);
}

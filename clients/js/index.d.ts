// Types of the sop-runner JavaScript client (shapes: docs/API.md).

export type Priority = 'low' | 'medium' | 'high' | 'critical';
export type RunStatus =
  | 'queued' | 'running' | 'waiting_approval' | 'waiting_confirmation'
  | 'success' | 'failure' | 'rejected' | 'cancelled' | 'timed_out' | 'interrupted';

/** The answer of every call that creates or changes a run. */
export interface RunRef {
  run_id: string;
  status: RunStatus;
}

export interface SopSummary {
  name: string;
  description: string;
  version: string;
  priority: Priority;
  execution_mode: 'automatic' | 'supervised' | 'step_by_step' | 'priority_based';
  steps: number;
  triggers: string[];
  last_status: RunStatus | null;
}

export interface StepRecord {
  number: number;
  title: string;
  status: 'pending' | 'running' | 'success' | 'failure' | 'skipped' | 'cancelled' | 'timed_out' | 'interrupted';
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  exit_code: number | null;
  output: string;
  attempts: number;
  reason: string | null;
}

export interface Approval {
  gate: string;
  decision: 'approved' | 'rejected' | 'confirmed' | 'confirmed_failed' | 'escalated' | 'timed_out';
  by: string;
  channel: string;
  at: string;
  comment: string | null;
  waited_ms: number;
}

/** A run: the same document as its audit file and `sop status --json`. */
export interface RunDocument {
  sop: string;
  version: string;
  run_id: string;
  status: RunStatus;
  priority: Priority;
  execution_mode: 'automatic' | 'supervised' | 'step_by_step';
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  trigger: { type: string; by: string };
  skip_approval: boolean;
  forced: boolean;
  vars: Record<string, string>;
  current_step: number | null;
  waiting: {
    gate: string;
    kind: 'approval' | 'confirmation';
    since: string;
    deadline: string | null;
    approved_by: string[];
    required: number;
    /** `anyone`, or the identities and groups allowed. */
    approvers: 'anyone' | string[];
    self_approval: boolean;
    timeout_action: 'reject' | 'escalate';
  } | null;
  error: string | null;
  steps: StepRecord[];
  rollback: StepRecord[];
  /** Verification gates by name. */
  gates: Record<string, StepRecord>;
  approvals: Approval[];
  metrics: {
    total_duration_ms: number | null;
    queue_wait_ms: number | null;
    steps_total: number;
    steps_completed: number;
    steps_skipped: number;
    steps_failed: number;
    approval_waits: number;
    approval_wait_ms: number;
  };
  /** While queued: why it waits, and its place in the queue. */
  queue?: string;
}

export interface RunRow {
  id: string;
  sop: string;
  status: RunStatus;
  priority: Priority;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  owner: { pid: number; start_time: number } | null;
  audit_path: string | null;
}

export interface Spread {
  count: number;
  p50: number | null;
  p95: number | null;
  max: number | null;
  sum: number;
}

export interface Figures {
  runs: number;
  by_status: Record<RunStatus, number>;
  success_rate: number | null;
  run_duration_ms: Spread;
  step_duration_ms: Spread;
  queue_wait_ms: Spread;
  approval_wait_ms: Spread;
  approvals: number;
  rejections: number;
  suppressed_triggers: number;
}

export interface Windows {
  all: Figures;
  '30d': Figures;
  '7d': Figures;
}

export interface Metrics {
  overall: Windows;
  sops: Record<string, Windows>;
}

export interface ExecuteOptions {
  vars?: Record<string, string | number | boolean>;
  /** Skip approvals (never manual steps); needs the admin role. */
  skipApproval?: boolean;
  priority?: Priority;
  /** Override a cooldown; needs the admin role. */
  force?: boolean;
}

export interface ApproveOptions {
  /** The run, when several of the SOP wait. */
  runId?: string;
  comment?: string;
  /** Variables to set (checked like execute-time ones). */
  set?: Record<string, string>;
}

export interface RunsFilter {
  sop?: string;
  status?: RunStatus | RunStatus[];
  limit?: number;
}

export interface SopRunner {
  execute(name: string, options?: ExecuteOptions): Promise<RunRef>;
  list(): Promise<SopSummary[]>;
  getStatus(name: string): Promise<RunDocument>;
  cancel(name: string): Promise<RunRef>;
  approve(sop: string, options?: ApproveOptions): Promise<RunRef>;
  reject(sop: string, reason: string, options?: { runId?: string }): Promise<RunRef>;
  runs(filter?: RunsFilter): Promise<RunRow[]>;
  run(id: string): Promise<RunDocument>;
  metrics(sop?: string): Promise<Metrics>;
}

export interface ClientOptions {
  /** Default: `SOP_URL`, else `http://127.0.0.1:7311`. */
  url?: string;
  /** Bearer token; default: `SOP_TOKEN`. */
  token?: string;
  fetch?: typeof fetch;
}

/** An error answer of the API, with its HTTP status and code (`cooldown`, `not_found`,
 * ...); also `network` (status 0: no answer), `bad_response` (an answer that is not JSON)
 * and `bad_request` (a SOP name the server would not take, refused before sending). */
export class SopError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string, options?: { cause?: unknown });
}

export function createClient(options?: ClientOptions): SopRunner;

/** A client of the daemon at `SOP_URL` with `SOP_TOKEN`. */
export const sopRunner: SopRunner;
export default sopRunner;

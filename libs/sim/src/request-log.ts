/** What the sim was asked: tests read it (e.g. "no request ever went to us-east-1"). */
export interface LoggedRequest {
  seq: number;
  /** Sim time, ISO: when the sim handled the call. */
  time: string;
  /** Sim time, ISO, the call is dated at (`SimCall.at`), when earlier than `time`: it waited behind others. */
  at?: string;
  service: "ec2" | "ssm" | "kube" | "sqs";
  region: string;
  action: string;
  /** Resource ids the call named or returned (instance ids, command ids, node names). */
  ids: string[];
  status: number;
  /** The error code, when the call failed. */
  error?: string;
}

export class RequestLog {
  readonly #entries: LoggedRequest[] = [];
  #seq = 0;
  readonly #limit: number;

  constructor(limit = 100_000) {
    this.#limit = limit;
  }

  record(entry: Omit<LoggedRequest, "seq">): void {
    this.#entries.push({ ...entry, seq: ++this.#seq });
    if (this.#entries.length > this.#limit) this.#entries.splice(0, this.#entries.length - this.#limit);
  }

  list(filter: Partial<Pick<LoggedRequest, "service" | "region" | "action">> = {}): LoggedRequest[] {
    return this.#entries.filter(
      (e) =>
        (!filter.service || e.service === filter.service) &&
        (!filter.region || e.region === filter.region) &&
        (!filter.action || e.action === filter.action),
    );
  }

  clear(): void {
    this.#entries.length = 0;
  }
}

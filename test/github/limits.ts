/**
 * GitHub's secondary rate limits, enforced by the simulator when a test asks for them
 * (`sim.enforceLimits`): content-creating requests (POST and PUT as an installation or a user)
 * per sliding window (GitHub: 80 a minute, 500 an hour), requests in flight at once (100), and
 * the hold that follows a breach: a 403 "secondary rate limit" with Retry-After, then every
 * request of that installation answered the same 403 until the hold passes, as GitHub does.
 * Windows are configurable so that a test can use small ones (8 a second) and stay fast.
 *
 * Every breach and every request made during a hold is recorded (`events`), with the most
 * requests seen in flight at once, whether limits are enforced or not.
 */

export interface ContentWindow {
  limit: number;
  windowMs: number;
}

export interface LimitsConfig {
  /** Content-creating requests allowed per window. Default GitHub's: 80 a minute, 500 an hour. */
  contentCreating?: ContentWindow[];
  /** Requests in flight at once per installation or user. Default 100. */
  maxInFlight?: number;
  /** Retry-After of a secondary limit, in seconds. Default 60. */
  retryAfterSeconds?: number;
}

export interface LimitEvent {
  /** When it happened (epoch ms). */
  at: number;
  /** The credentials: "installation:<id>" or "user:<login>". */
  who: string;
  /** content: a window was full; in-flight: too many requests at once; during-hold: a request made while a hold lasted. */
  kind: "content" | "in-flight" | "during-hold";
  method: string;
  path: string;
  /** When the hold that answered it ends (epoch ms). */
  holdUntil: number;
}

export const GITHUB_LIMITS: Required<LimitsConfig> = {
  contentCreating: [
    { limit: 80, windowMs: 60_000 },
    { limit: 500, windowMs: 3_600_000 },
  ],
  maxInFlight: 100,
  retryAfterSeconds: 60,
};

export const SECONDARY_LIMIT_MESSAGE =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";

/** A request that counts against the content-creation limits. */
export function isContentCreating(method: string, path: string): boolean {
  return (method === "POST" || method === "PUT") && !path.startsWith("/app/") && path !== "/app";
}

export class Limits {
  /** Breaches and requests made during holds, in order. */
  readonly events: LimitEvent[] = [];
  /** Content-creating requests accepted, per credentials. */
  readonly created = new Map<string, number>();
  /** The most requests in flight at once, per credentials (tracked whether or not limits are enforced). */
  readonly maxInFlightSeen = new Map<string, number>();
  private config: Required<LimitsConfig> | undefined;
  private readonly accepted = new Map<string, number[]>();
  private readonly flying = new Map<string, number>();
  private readonly holds = new Map<string, number>();

  /** Starts enforcing (GitHub's limits, or the ones given); `undefined` stops. */
  enforce(config: LimitsConfig | undefined): void {
    this.config = config ? { ...GITHUB_LIMITS, ...config } : undefined;
    this.holds.clear();
    this.accepted.clear();
  }

  get enforced(): boolean {
    return this.config !== undefined;
  }

  /** A hold in force for these credentials (epoch ms), or undefined. */
  holdOf(who: string, now = Date.now()): number | undefined {
    const until = this.holds.get(who);
    return until !== undefined && until > now ? until : undefined;
  }

  /**
   * A request arrived: counts it in flight, and answers whether a limit refuses it (with the
   * Retry-After to send, in seconds) or lets it through.
   */
  arrive(who: string, method: string, path: string, now = Date.now()): { refused: false } | { refused: true; retryAfter: number } {
    const flying = (this.flying.get(who) ?? 0) + 1;
    this.flying.set(who, flying);
    this.maxInFlightSeen.set(who, Math.max(this.maxInFlightSeen.get(who) ?? 0, flying));
    const c = this.config;
    if (!c || !(who.startsWith("installation:") || who.startsWith("user:"))) return { refused: false };
    const hold = this.holdOf(who, now);
    if (hold !== undefined) {
      this.events.push({ at: now, who, kind: "during-hold", method, path, holdUntil: hold });
      return { refused: true, retryAfter: Math.max(1, Math.ceil((hold - now) / 1000)) };
    }
    const breach = (kind: LimitEvent["kind"]) => {
      const until = now + c.retryAfterSeconds * 1000;
      this.holds.set(who, until);
      this.events.push({ at: now, who, kind, method, path, holdUntil: until });
      return { refused: true as const, retryAfter: c.retryAfterSeconds };
    };
    if (flying > c.maxInFlight) return breach("in-flight");
    if (isContentCreating(method, path)) {
      const times = this.accepted.get(who) ?? [];
      const longest = Math.max(...c.contentCreating.map((w) => w.windowMs));
      while (times.length && (times[0] as number) <= now - longest) times.shift();
      if (c.contentCreating.some((w) => times.filter((t) => t > now - w.windowMs).length >= w.limit)) return breach("content");
      times.push(now);
      this.accepted.set(who, times);
      this.created.set(who, (this.created.get(who) ?? 0) + 1);
    }
    return { refused: false };
  }

  /** The request was answered. */
  leave(who: string): void {
    this.flying.set(who, Math.max(0, (this.flying.get(who) ?? 1) - 1));
  }

  /**
   * The most content-creating requests accepted in any window of `windowMs`, per credentials, from
   * the request log's arrival times (`times`): what a test compares with a budget.
   */
  static mostInWindow(times: number[], windowMs: number): number {
    const sorted = [...times].sort((a, b) => a - b);
    let most = 0;
    let from = 0;
    for (let i = 0; i < sorted.length; i++) {
      while ((sorted[from] as number) <= (sorted[i] as number) - windowMs) from++;
      most = Math.max(most, i - from + 1);
    }
    return most;
  }
}

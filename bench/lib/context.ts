/** What every benchmark section gets, and what it gives back for bench/RESULTS.md. */
import type { Dbos } from "./dbos.js";
import type { Workspace } from "./sluice.js";
import type { Yardsticks } from "../yardsticks.js";

export interface Context {
  /** The benchmark's PostgreSQL server (durable: fsync on), database `sluice_test`. */
  pgUrl: string;
  ws: Workspace;
  /** Smaller sizes, for trying the benchmarks out; RESULTS.md says so. */
  quick: boolean;
  yard: Yardsticks;
  /** DBOS Transact on the same server, launched on first use. */
  dbos(): Promise<Dbos>;
  log(message: string): void;
}

/** One row of the targets table at the top of RESULTS.md. */
export interface TargetCheck {
  measure: string;
  figure: string;
  target: string;
  met: boolean;
  /** How far off, when missed ("3.2x over"). */
  by?: string;
}

export interface Section {
  title: string;
  /** Markdown: how it was measured, then the figures. */
  body: string;
  targets?: TargetCheck[];
}

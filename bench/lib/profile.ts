/**
 * A CPU profile of some work in this process (V8's sampling profiler through `node:inspector`),
 * boiled down to what bounds it: the functions with the most self time, garbage collection's
 * share, and how much of the time the process sat idle waiting for I/O.
 */
import { Session } from "node:inspector/promises";
import { resolve } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export interface ProfileSummary {
  /** Sampled wall time. */
  totalMs: number;
  /** Shares of the sampled time. */
  idle: number;
  gc: number;
  top: { fn: string; where: string; share: number }[];
}

const ROOT = resolve(import.meta.dirname, "../..");

/** A package name, a `node:` module, or a path in the repository (lines are the transpiled code's, so left out). */
function where(url: string): string {
  if (!url) return "(native)";
  const path = url.replace(/^file:\/\//, "");
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) return path.slice(nm + "/node_modules/".length).split("/").slice(0, path.includes("/node_modules/@", nm) ? 2 : 1).join("/");
  if (path.startsWith("node:")) return path;
  return path.startsWith(ROOT) ? path.slice(ROOT.length + 1) : path;
}

export async function profiled<T>(work: () => Promise<T>, topN = 12): Promise<{ value: T; summary: ProfileSummary }> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 200 });
    await session.post("Profiler.start");
    const value = await work();
    const { profile } = (await session.post("Profiler.stop")) as { profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] } };
    const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<string, { fn: string; where: string; us: number }>();
    let total = 0;
    let idle = 0;
    let gc = 0;
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      total += us;
      const frame = byNode.get(id)!.callFrame;
      if (frame.functionName === "(idle)") idle += us;
      if (frame.functionName === "(garbage collector)") gc += us;
      const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`;
      const entry = self.get(key) ?? { fn: frame.functionName || "(anonymous)", where: where(frame.url), us: 0 };
      entry.us += us;
      self.set(key, entry);
    });
    const top = [...self.values()]
      .filter((e) => e.fn !== "(idle)")
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, share: e.us / total }));
    return { value, summary: { totalMs: total / 1000, idle: idle / total, gc: gc / total, top } };
  } finally {
    session.disconnect();
  }
}

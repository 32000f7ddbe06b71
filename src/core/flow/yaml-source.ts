/**
 * YAML with positions: parse with the `yaml` Document API and a line counter, turn every
 * problem into a Diagnostic, and map JSON pointers back to lines and columns.
 */
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Document, type Node } from "yaml";
import type { Diagnostic } from "./types.js";

export const MAX_ALIAS_COUNT = 100;

export interface Position {
  line: number;
  column: number;
}

export interface YamlSource {
  /** The document as plain data, or undefined when it could not be read. */
  value: unknown;
  diagnostics: Diagnostic[];
  /** Position of the node at a JSON pointer (the value; `key: true` for the key of a pair). */
  position(pointer: string, opts?: { key?: boolean }): Position;
}

export function escapePointer(segment: string | number): string {
  return String(segment).replace(/~/g, "~0").replace(/\//g, "~1");
}

export function parseYamlSource(text: string, file?: string): YamlSource {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const diagnostics: Diagnostic[] = [];
  const at = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const diag = (code: string, message: string, pos: Position, pointer = ""): Diagnostic => ({
    severity: "error",
    code,
    message,
    ...(file ? { file } : {}),
    line: pos.line,
    column: pos.column,
    pointer,
  });

  const values = new Map<string, { value: Position; key?: Position }>();
  const position = (pointer: string, opts: { key?: boolean } = {}): Position => {
    let p = pointer;
    while (true) {
      const hit = values.get(p);
      if (hit) return (opts.key && hit.key) || hit.value;
      if (p === "") return { line: 1, column: 1 };
      p = p.slice(0, p.lastIndexOf("/"));
    }
  };

  const list = Array.isArray(docs) ? docs : [docs];
  const first = list[0] as Document.Parsed | undefined;
  if (list.length > 1) {
    const second = list[1] as Document.Parsed;
    diagnostics.push(
      diag("YAML_MULTIPLE_DOCUMENTS", "a flow file holds one YAML document; remove the second one", at(second.range[0])),
    );
  }
  if (!first) return { value: undefined, diagnostics: [diag("YAML_NOT_MAPPING", "the file is empty", { line: 1, column: 1 })], position };

  for (const err of first.errors) {
    const code = err.code === "DUPLICATE_KEY" ? "YAML_DUPLICATE_KEY" : "YAML_SYNTAX";
    const message = err.message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? err.message;
    diagnostics.push(diag(code, code === "YAML_DUPLICATE_KEY" ? "this key is already set in the same mapping" : message, at(err.pos[0])));
  }
  if (diagnostics.some((d) => d.code === "YAML_SYNTAX" || d.code === "YAML_DUPLICATE_KEY")) {
    return { value: undefined, diagnostics, position };
  }

  let firstAlias: Position | undefined;
  const walk = (node: unknown, pointer: string, keyPos?: Position): void => {
    if (!node || typeof node !== "object") return;
    const n = node as Node;
    if (isAlias(n) && n.range && !firstAlias) firstAlias = at(n.range[0]);
    if (n.range) values.set(pointer, { value: at(n.range[0]), ...(keyPos ? { key: keyPos } : {}) });
    if (isMap(n)) {
      for (const item of n.items) {
        if (!isPair(item)) continue;
        const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
        const kp = isScalar(item.key) && item.key.range ? at(item.key.range[0]) : undefined;
        const child = `${pointer}/${escapePointer(key)}`;
        if (item.value) walk(item.value, child, kp);
        else if (kp) values.set(child, { value: kp, key: kp });
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => walk(item, `${pointer}/${i}`));
    }
  };
  walk(first.contents, "");

  let value: unknown;
  try {
    value = first.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    diagnostics.push(
      diag("YAML_ALIAS_LIMIT", `too many alias expansions (more than ${MAX_ALIAS_COUNT}): ${msg}`, firstAlias ?? { line: 1, column: 1 }),
    );
    return { value: undefined, diagnostics, position };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    diagnostics.push(diag("YAML_NOT_MAPPING", "the document must be a mapping of keys to values", { line: 1, column: 1 }));
    return { value: undefined, diagnostics, position };
  }
  return { value, diagnostics, position };
}

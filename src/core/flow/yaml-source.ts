/**
 * YAML with positions: parse with the `yaml` Document API and a line counter, turn every
 * problem into a Diagnostic, and map JSON pointers back to lines and columns. A file over
 * MAX_FLOW_FILE_BYTES is refused before it is parsed.
 */
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Document, type Node } from "yaml";
import type { Diagnostic } from "./types.js";

export const MAX_ALIAS_COUNT = 100;
/** The largest flow or config file Sluice reads: parsing costs grow with the file, and no flow needs more. */
export const MAX_FLOW_FILE_BYTES = 1024 * 1024;

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

/** The bytes of `text` in UTF-8, counted without encoding it. */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair: one code point beyond the BMP
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** FLOW_TOO_LARGE for a file of `bytes`, at its first line: the file as a whole is the problem. */
export function flowTooLarge(bytes: number, file?: string): Diagnostic {
  return {
    severity: "error",
    code: "FLOW_TOO_LARGE",
    message: `the file is ${bytes} bytes, more than the ${MAX_FLOW_FILE_BYTES} bytes (1 MiB) a flow or config file may have: it was not parsed`,
    ...(file ? { file } : {}),
    line: 1,
    column: 1,
    pointer: "",
  };
}

export function parseYamlSource(text: string, file?: string): YamlSource {
  const bytes = utf8Length(text);
  if (bytes > MAX_FLOW_FILE_BYTES) return { value: undefined, diagnostics: [flowTooLarge(bytes, file)], position: () => ({ line: 1, column: 1 }) };
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

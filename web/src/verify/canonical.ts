/**
 * RFC 8785 (JCS) canonical JSON, as the log hashes it (`core/canonical.py`).
 *
 * JCS is defined on ECMAScript's own serialisation: numbers and strings exactly as
 * `JSON.stringify` writes them, object members sorted by their UTF-16 code units (which
 * is how JavaScript compares strings). What is left is the recursion below.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("JSON numbers are finite");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  throw new TypeError(`${typeof value} is not JSON`);
}

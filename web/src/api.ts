// The server's HTTP API, same origin only. Errors are RFC 9457 problems; ApiError keeps
// their stable `code` and human `detail`.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

export async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  token?: string | null,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  let resp: Response;
  for (let attempt = 0; ; attempt++) {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    // the database is briefly unreachable, or too many requests: wait as asked, then again
    if ((resp.status === 503 || resp.status === 429) && attempt < 5) {
      const wait = Number(resp.headers.get("Retry-After") ?? "1");
      await new Promise((r) => setTimeout(r, Math.min(Math.max(wait, 1), 10) * 1000));
      continue;
    }
    break;
  }
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    const p = (json ?? {}) as { code?: string; detail?: string; title?: string };
    throw new ApiError(resp.status, p.code ?? "http_" + resp.status, p.detail ?? p.title ?? resp.statusText);
  }
  return json as T;
}

export const enc = encodeURIComponent;

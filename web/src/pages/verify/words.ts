// Log entries and scopes in plain words, for the access-history and connected-apps pages.

import type { Entry } from "../../verify/entries";
import { deviceId } from "../../verify/entries";

export interface Names {
  /** partner id -> its display name, from the public agreements */
  partners: Map<string, string>;
  /** scope name -> what it allows, from the public scope catalogue */
  scopes: Map<string, string>;
}

export function partnerName(names: Names, id: string | null): string {
  return id === null ? "an app" : (names.partners.get(id) ?? id);
}

/** One sentence for an entry about you. */
export function describe(e: Entry, names: Names): string {
  const who = partnerName(names, e.partner);
  const scopes = e.scopes.join(", ");
  switch (e.type) {
    case "access": {
      const items = e.body.items;
      const data = String(e.body.data ?? "data").replaceAll("_", " ");
      const what = typeof items === "number" ? `${items} × ${data}` : data;
      return `${who} used “${scopes}” (${e.endpoint ?? "?"}): ${what}`;
    }
    case "grant":
      return `You connected ${who}, allowing: ${scopes}`;
    case "revocation": {
      const reason = typeof e.body.reason === "string" ? ` (${e.body.reason.replaceAll("_", " ")})` : "";
      return `${who} was disconnected${reason}: ${scopes} no longer allowed`;
    }
    case "device": {
      const change = e.body.change === "removed" ? "removed from" : "added to";
      const id = deviceId(e);
      return id ? `Device ${id} was ${change} your account` : `A device was ${change} your account`;
    }
    default:
      return `A ${e.type} record`;
  }
}

export function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
}

export async function loadNames(get: <T>(path: string) => Promise<T>): Promise<Names> {
  const [agreements, catalogue] = await Promise.all([
    get<{ partners: { partner_id: string; name: string }[] }>("/v1/agreements"),
    get<{ scopes: { name: string; description: string }[] }>("/v1/scopes"),
  ]);
  return {
    partners: new Map(agreements.partners.map((p) => [p.partner_id, p.name])),
    scopes: new Map(catalogue.scopes.map((s) => [s.name, s.description])),
  };
}

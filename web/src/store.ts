// The browser's own storage for one device, outside the crypto store: a small key-value
// object store in IndexedDB ("clearpost-app"). The session (access token and the crypto
// store's passphrase) is kept encrypted under a non-extractable AES-GCM key, itself kept in
// IndexedDB as a CryptoKey object: script can use it but never read its bytes.

const DB = "clearpost-app";
const STORE = "kv";

let opened: Promise<IDBDatabase> | null = null;
/** Set when the device is wiped. A write still under way then (a sync's cursor, a check of
 * the directory) must fail, not open the database again and leave it behind. */
let wiped = false;

function db(): Promise<IDBDatabase> {
  if (wiped) return Promise.reject(new Error("this device was signed out: its storage is deleted"));
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opened;
}

function done<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export async function get<T>(key: string): Promise<T | undefined> {
  const tx = (await db()).transaction(STORE, "readonly");
  return (await done(tx.objectStore(STORE).get(key))) as T | undefined;
}

export async function put(key: string, value: unknown): Promise<void> {
  const tx = (await db()).transaction(STORE, "readwrite");
  await done(tx.objectStore(STORE).put(value, key));
}

export async function del(key: string): Promise<void> {
  const tx = (await db()).transaction(STORE, "readwrite");
  await done(tx.objectStore(STORE).delete(key));
}

/** What a signed-in browser keeps (encrypted) to come back after a reload. */
export interface Session {
  userId: string;
  deviceId: string;
  accessToken: string;
  /** the crypto store's name and passphrase (OlmMachine.initialize) */
  storeName: string;
  storePassphrase: string;
}

interface Wrapped {
  iv: Uint8Array<ArrayBuffer>;
  data: ArrayBuffer;
}

async function wrappingKey(): Promise<CryptoKey> {
  const existing = await get<CryptoKey>("wrapKey");
  if (existing) return existing;
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  await put("wrapKey", key);
  return key;
}

export async function saveSession(session: Session): Promise<void> {
  const key = await wrappingKey();
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const plain = new TextEncoder().encode(JSON.stringify(session));
  const data = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, plain);
  await put("session", { iv, data } satisfies Wrapped);
}

export async function loadSession(): Promise<Session | null> {
  const wrapped = await get<Wrapped>("session");
  const key = await get<CryptoKey>("wrapKey");
  if (!wrapped || !key) return null;
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: wrapped.iv }, key, wrapped.data);
  return JSON.parse(new TextDecoder().decode(plain)) as Session;
}

/** A fresh random passphrase for a new device's crypto store (256 bits, base64). */
export function newPassphrase(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes));
}

/** Delete everything this browser holds for Clearpost: the crypto store, the session and
 * its wrapping key, cursors and read markers. Nothing can be stored after it. */
export async function wipe(storeName: string | null): Promise<void> {
  wiped = true;
  if (opened) {
    (await opened).close();
    opened = null;
  }
  const names = (await indexedDB.databases()).map((d) => d.name ?? "");
  const doomed = names.filter((n) => n === DB || (storeName !== null && n.startsWith(storeName)));
  await Promise.all(
    doomed.map(
      (name) =>
        new Promise<void>((resolve) => {
          const req = indexedDB.deleteDatabase(name);
          req.onsuccess = req.onerror = req.onblocked = () => resolve();
        }),
    ),
  );
}

/** Start a device afresh (a login): delete what an earlier session left behind, then store
 * again. */
export async function reset(): Promise<void> {
  await wipe(null);
  wiped = false;
}

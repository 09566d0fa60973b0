// What this browser remembers about the transparency log: the pinned log key and the last
// checkpoint it verified, in an IndexedDB database of its own ("clearpost-log"), one record
// per server. Kept across sign-outs on purpose: the point is to notice a log that shows this
// browser a history that does not extend what it saw before, whoever is signed in.

import type { LogMemory, Remembered } from "../../verify/history";

const DB = "clearpost-log";
const STORE = "log";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function run<T>(mode: IDBTransactionMode, work: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  return open().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = work(tx.objectStore(STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(req.result as T);
        };
        tx.onerror = () => {
          db.close();
          reject(tx.error);
        };
      }),
  );
}

export function browserMemory(key = location.origin): LogMemory {
  return {
    load: async () => (await run<Remembered | undefined>("readonly", (s) => s.get(key))) ?? null,
    save: async (value) => void (await run("readwrite", (s) => s.put(value, key))),
  };
}

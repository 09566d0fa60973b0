// The browser's own storage (src/store.ts), put on the page for tests/web/test_web_store.py:
// a real Chromium runs it on a localhost origin, as the crypto worker does.
import * as store from "../../src/store";

declare global {
  interface Window {
    store: typeof store;
  }
}

window.store = store;

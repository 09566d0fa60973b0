// web-verify's pages: access history (verified in this browser), connected apps, and the
// partner share flow. They register with the app's page registry (../../ui.ts).

import type { Me } from "../../protocol";
import { navLink, page, rpc } from "../../ui";
import { accessPage } from "./access";
import { appsPage } from "./apps";
import { sharesPage } from "./shares";

page("shares", (route) => sharesPage(route.parts[1]));
page("apps", () => appsPage());
page("access", async () => accessPage((await rpc<Me>("whoami")).userId));
navLink("#/shares", "Shares from apps");
navLink("#/apps", "Connected apps");
navLink("#/access", "Access history");

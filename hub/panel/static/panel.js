// SPDX-License-Identifier: Apache-2.0
// Progressive enhancement for the panel: every page works without this file.
// One module, loaded with <script type="module"> (CSP: script-src 'self'), no inline code.
import { startLive } from "./live.js";
import { startEditor } from "./editor.js";
import { startRollout } from "./rollout.js";
import { startMenus } from "./menus.js";

startLive(document);
startEditor(document);
startRollout(document);
startMenus(document);

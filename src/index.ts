/**
 * Probot entry: the default-exported app function, for `probot run ./dist/src/index.js` and
 * any Probot host. Wiring only: everything is composed in src/app/server.ts from the
 * environment (`sluice serve` uses the same function through Probot's `run()`).
 */
import type { ApplicationFunction } from "probot";
import { sluiceApp } from "./app/server.js";

const app: ApplicationFunction = (probot, options) => sluiceApp({ env: process.env, cwd: options.cwd })(probot, options);

export default app;

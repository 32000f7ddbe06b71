/**
 * What the API reads from GitHub (or, on a server without the app's credentials, from the checkout
 * it runs in). Through the app's installation on each repository: flows (as
 * `/run` comments read them: the live release, or a ref's flows with the live config) and people
 * (as approvals from GitHub resolve them: permission and team memberships, asked fresh). Its
 * requests wait for the installation's budget as a command's reply does (bounded): a person is
 * waiting for the answer.
 */
import { loadFlow, loadRelease, pickFlow } from "../../app/releases.js";
import { isBotLogin } from "../../core/engine/gates.js";
import { SluiceError } from "../../core/errors.js";
import type { FlowSource } from "../../ports/flow-source.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Installations } from "../github/installations.js";
import { personOf } from "../github/people.js";
import { asLoaded, liveSnapshot, snapshotAt } from "../github/snapshot.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import type { ApiGitHub } from "./api.js";

export function apiGitHub(store: RunStore, installations: Pick<Installations, "api">, now: () => number): ApiGitHub {
  async function flows(repo: string, ref: string | undefined) {
    const source = new GitHubFlowSource(repo, await installations.api(repo));
    const live = await liveSnapshot(store, source, now());
    if (ref === undefined) return asLoaded(live.snapshot, live.release);
    const sha = await source.resolve(ref);
    if (sha === live.release.sha) return asLoaded(live.snapshot, { sha, ref, kind: "live" });
    // A draft: the flows at the ref, with the live release's config (a branch never weakens policy).
    return asLoaded(await snapshotAt(source, sha, live.snapshot), { sha, ref, kind: "draft" });
  }
  return {
    flows,
    async flow(repo, name, ref) {
      const loaded = await flows(repo, ref);
      return { flow: pickFlow(loaded, name), config: loaded.config, release: loaded.release };
    },
    async person(repo, login, teams) {
      const p = await personOf(await installations.api(repo), repo, { login }, teams);
      return { is_bot: p.is_bot, permission: p.permission, teams: p.teams };
    },
  };
}

/**
 * The API of a server without the app's credentials, for local use: the flows of the checkout it
 * runs in (one repository), and people as local mode knows them: every login is taken at its word
 * (the token's), and anyone but the run's trigger actor counts as having write access.
 */
export function apiCheckout(source: FlowSource, repo: string): ApiGitHub {
  const only = (asked: string) => {
    if (asked.toLowerCase() !== repo.toLowerCase()) {
      throw new SluiceError("NOT_FOUND", `this server has no GitHub App credentials: it serves the flows of its own checkout, ${repo}, not ${asked}`, { repo: asked });
    }
  };
  return {
    async flows(asked, ref) {
      only(asked);
      return loadRelease(source, ref);
    },
    async flow(asked, name, ref) {
      only(asked);
      return loadFlow(source, name, ref);
    },
    async person(_repo, login) {
      return { is_bot: isBotLogin(login), permission: "write", teams: [] };
    },
  };
}

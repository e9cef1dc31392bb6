/**
 * The rows of the hot path: small requests on 32 connections, one
 * connection with one request at a time, and browser-sized heads, each run
 * on the gateway, on a bare Node relay of the same bytes (Node's floor) and
 * on nginx, in turn within every round, so that each ratio compares runs
 * made side by side on a shared, noisy machine.
 *
 * @module
 */
import { rateAndCpu, type LoadRun } from "./cpu.ts";
import { fmt, median, type Paired, type Row } from "./main.ts";
import { formatCounts, hasStrace, syscallsPerRequest } from "./syscalls.ts";
import { runWrk } from "./wrk.ts";

/**
 * What Chromium sends for a page of a Jupyter server behind the gateway:
 * its 14 fields after Host, with a cookie jar of the size such an app
 * leaves (the route's own `authorization` cookie is added last).
 */
export const BROWSER_HEADERS: Readonly<Record<string, string>> = {
  "Connection": "keep-alive",
  "sec-ch-ua": '"Chromium";v="156", "Not)A;Brand";v="24"',
  "sec-ch-ua-mobile": "?0",
  "sec-ch-ua-platform": '"Linux"',
  "Upgrade-Insecure-Requests": "1",
  "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
  "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
  "Sec-Fetch-Site": "same-origin",
  "Sec-Fetch-Mode": "navigate",
  "Sec-Fetch-User": "?1",
  "Sec-Fetch-Dest": "document",
  "Referer": "https://lab-ann.example.org/lab/tree",
  "Accept-Encoding": "gzip, deflate, br, zstd",
  "Accept-Language": "en-US,en;q=0.9",
};

/** The Cookie field of a browser that has used the app for a while: Jupyter's cookies, then the route's. */
export function browserCookie(routeCookie: string): string {
  return "_xsrf=2|7f1a2b3c|0123456789abcdef0123456789abcdef|1700000000; username-lab-ann-example-org=\"2|1:0|10:1700000000|" +
    "29:username-lab-ann-example-org|44:ZGVmYXVsdA==|abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567\"; " + routeCookie;
}

/** Runs each of `measures` once per round, in turn, `rounds` times; what each run reported, by round, then measure. */
export async function alternate(measures: Array<() => Promise<number[]>>, rounds: number): Promise<number[][][]> {
  const runs: number[][][] = [];
  for (let i = 0; i < rounds; i++) {
    const round: number[][] = [];
    for (const measure of measures) round.push(await measure());
    runs.push(round);
  }
  return runs;
}

/** Figure `k` of measures `a` and `b` over the rounds of `runs`: their medians, the median of the per-round ratios a/b, and that ratio's spread. */
export function compare(runs: number[][][], a: number, b: number, k: number): Paired {
  const as = runs.map((r) => r[a][k]), bs = runs.map((r) => r[b][k]), ratios = runs.map((r) => r[a][k] / r[b][k]);
  return { a: median(as), b: median(bs), ratio: median(ratios), spread: `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` };
}

/** A proxy under test: the process whose CPU is counted (with its children), and where requests go. */
export interface Proxy {
  pid: number;
  url: string;
}

/** The proxies of one comparison and how wrk reaches the route. */
export interface HotPathSetup {
  gateway: Proxy;
  relay: Proxy;
  /** nginx with the same X-Forwarded fields as the gateway. */
  nginx: Proxy;
  /** nginx with proxy_pass and upstream keep-alive only. */
  minimal: Proxy;
  host: string;
  /** The route's cookie, `authorization=TOKEN`. */
  cookie: string;
  seconds: number;
  rounds: number;
}

const GATEWAY = 0, RELAY = 1, NGINX = 2;
const RATE = 0, CPU = 1;

/** Rows 0, 0b–0e and 1, 1c–1f (see RESULTS.md). */
export async function hotPathRows(s: HotPathSetup): Promise<Row[]> {
  const rows: Row[] = [];
  /** A wrk run against `proxy`: requests/s, and µs of the proxy's CPU per request. */
  const run = (proxy: Proxy, headers: Record<string, string>, connections = 32, seconds = s.seconds) => (): Promise<number[]> =>
    rateAndCpu(proxy.pid, async (): Promise<LoadRun> => {
      const r = await runWrk({ url: `${proxy.url}/hello`, headers, seconds, connections, threads: Math.min(2, connections) });
      if (r.errors > 0) throw new Error(`wrk saw ${r.errors} errors on ${proxy.url} (${r.errorText})`);
      return { rate: r.requestsPerSec, requests: r.requests };
    });
  const ratio = (p: Paired): string => `${p.ratio.toFixed(2)} (${p.spread})`;
  const small = { Host: s.host, Cookie: s.cookie };

  // CPU per request first: the figure a shared machine's noise moves least.
  const smallRuns = await alternate([run(s.gateway, small), run(s.relay, small), run(s.nginx, small)], s.rounds);
  const cpu = compare(smallRuns, GATEWAY, NGINX, CPU), relayCpu = compare(smallRuns, RELAY, NGINX, CPU), overRelay = compare(smallRuns, GATEWAY, RELAY, CPU);
  const rate = compare(smallRuns, GATEWAY, NGINX, RATE);
  rows.push(
    { measure: "0. µs of CPU per small request, the proxy alone (gateway; nginx master and workers)", conductor: fmt(cpu.a, 1), reference: `${fmt(cpu.b, 1)} (nginx, same headers)`, ratio: ratio(cpu), target: "≤ 1.3" },
    { measure: "0b. the same for a bare Node relay of the bytes (net.Socket pipes, no HTTP): Node's floor, same rounds", conductor: fmt(relayCpu.a, 1), reference: `${fmt(relayCpu.b, 1)} (nginx, same headers)`, ratio: ratio(relayCpu), target: "" },
    { measure: "0c. the gateway's CPU per small request against the bare relay's, same rounds", conductor: fmt(overRelay.a, 1), reference: `${fmt(overRelay.b, 1)} (bare relay)`, ratio: ratio(overRelay), target: "≤ 1.2" },
    { measure: "1. requests/s, small responses, 32 connections, through the SSH tunnel", conductor: fmt(rate.a), reference: `${fmt(rate.b)} (nginx, same headers)`, ratio: ratio(rate), target: "≥ 0.95" },
  );

  const minimalRuns = await alternate([run(s.gateway, small), run(s.minimal, small)], s.rounds);
  const bare = compare(minimalRuns, 0, 1, RATE);
  rows.push({ measure: "1b. the same against a minimal nginx (proxy_pass and upstream keep-alive only, no X-Forwarded fields)", conductor: fmt(bare.a), reference: `${fmt(bare.b)} (nginx, minimal)`, ratio: ratio(bare), target: "≥ 0.85" });

  // One request at a time on one connection: what a browser tab does between bursts, where waiting, not CPU, decides.
  // A lone request's rate moves with every other process on the machine: three times the rounds, a third as long
  // each, keep the runs compared within a few seconds of each other for the same total time.
  const slice = Math.max(1, Math.round(s.seconds / 3));
  const oneRuns = await alternate([run(s.gateway, small, 1, slice), run(s.relay, small, 1, slice), run(s.minimal, small, 1, slice)], s.rounds * 3);
  const one = compare(oneRuns, GATEWAY, NGINX, RATE), oneRelay = compare(oneRuns, RELAY, NGINX, RATE);
  rows.push(
    { measure: "1c. requests/s, one connection, one request at a time", conductor: fmt(one.a), reference: `${fmt(one.b)} (nginx, minimal)`, ratio: ratio(one), target: "≥ 0.9" },
    { measure: "1d. the same for the bare relay (Node's floor), same rounds", conductor: fmt(oneRelay.a), reference: `${fmt(oneRelay.b)} (nginx, minimal)`, ratio: ratio(oneRelay), target: "" },
  );
  if (hasStrace) {
    // Where a lone request could wait inside a proxy: every read, write and return to the event loop, counted.
    const lone = (proxy: Proxy) => syscallsPerRequest(proxy.pid, async () =>
      (await runWrk({ url: `${proxy.url}/hello`, headers: small, seconds: slice, connections: 1, threads: 1 })).requests);
    const [gateway, relay, nginx] = [await lone(s.gateway), await lone(s.relay), await lone(s.minimal)];
    rows.push({ measure: "1f. syscalls per lone request, reads / writes / event-loop waits (strace -c; the gateway, then the bare relay)",
      conductor: `${formatCounts(gateway)}; relay ${formatCounts(relay)}`, reference: `${formatCounts(nginx)} (nginx, minimal)`, ratio: "", target: "no more than the relay" });
  }

  const browser = { Host: s.host, ...BROWSER_HEADERS, Cookie: browserCookie(s.cookie) };
  const headBytes = Object.entries(browser).reduce((n, [k, v]) => n + k.length + v.length + 4, "GET /hello HTTP/1.1\r\n\r\n".length);
  const browserRuns = await alternate([run(s.gateway, browser), run(s.relay, browser), run(s.minimal, browser)], s.rounds);
  const heads = compare(browserRuns, GATEWAY, NGINX, RATE), headsCpu = compare(browserRuns, GATEWAY, NGINX, CPU), headsOverRelay = compare(browserRuns, GATEWAY, RELAY, CPU);
  const what = `browser-sized heads (Chromium's ${Object.keys(browser).length} fields with a cookie jar, ${headBytes} bytes)`;
  rows.push(
    { measure: `0d. µs of CPU per request with ${what}, the proxy alone`, conductor: fmt(headsCpu.a, 1), reference: `${fmt(headsCpu.b, 1)} (nginx, minimal, same heads)`, ratio: ratio(headsCpu), target: "" },
    { measure: "0e. the same against the bare relay's, same rounds", conductor: fmt(headsOverRelay.a, 1), reference: `${fmt(headsOverRelay.b, 1)} (bare relay, same heads)`, ratio: ratio(headsOverRelay), target: "≤ 1.3" },
    { measure: `1e. requests/s with ${what}, 32 connections`, conductor: fmt(heads.a), reference: `${fmt(heads.b)} (nginx, minimal, same heads)`, ratio: ratio(heads), target: "" },
  );
  return rows;
}

/**
 * What reaches nginx's files: only values that pass the rules, rendered
 * into blocks whose allow and deny lines mean what the options say.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { renderMainConfig, renderPortBlock, sizeNginx } from "../../src/streams/render.ts";
import { BUILTIN_MODULE, DEFAULT_STREAM_SETTINGS, type StreamSettings } from "../../src/streams/settings.ts";
import { checkBackend, checkCidr, checkPort, checkStreamName, parsePortRange } from "../../src/streams/validate.ts";

const settings: StreamSettings = { ...DEFAULT_STREAM_SETTINGS, host: "gw.example.org" };
const link = { link: "/run/conductor/streams/9003.sock" };
const features = { halfClose: true };

test("a port's block relays to its link (or an admin's address) with the stream settings; denials come before an allow list, which ends with deny all", () => {
  const plain = renderPortBlock(9003, link, settings, features);
  assert.match(plain, /^\s+listen 9003;$/m);
  assert.match(plain, /^\s+proxy_pass unix:\/run\/conductor\/streams\/9003\.sock;$/m);
  assert.match(plain, /^\s+proxy_timeout 86400s;$/m);
  assert.match(plain, /^\s+proxy_half_close on;$/m);
  assert.match(plain, /^\s+limit_conn conductor_addresses 256;$/m, "one address cannot take every connection of a port");
  assert.match(plain, /^\s+limit_conn conductor_streams 1024;$/m, "a port's connections are capped by default");
  assert.doesNotMatch(plain, /allow|deny|proxy_protocol/);
  assert.doesNotMatch(renderPortBlock(9003, link, settings, { halfClose: false }), /proxy_half_close/, "an nginx before 1.21.4 does not know it");
  assert.match(renderPortBlock(9003, { address: "192.0.2.7:5432", note: "x" }, settings, features), /^\s+proxy_pass 192\.0\.2\.7:5432;$/m);
  const strict = renderPortBlock(9003, link, { ...settings, allow: ["10.0.0.0/8"], deny: ["10.9.0.0/16"], maxConnections: 5, maxConnectionsPerAddress: 0, proxyProtocol: true }, features);
  // nginx takes the first rule that matches: a deny inside an allowed block must come first to hold.
  assert.deepEqual(strict.split("\n").filter((l) => /allow|deny/.test(l)).map((l) => l.trim()), ["deny 10.9.0.0/16;", "allow 10.0.0.0/8;", "deny all;"]);
  assert.match(strict, /limit_conn conductor_streams 5;/);
  assert.doesNotMatch(strict, /conductor_addresses/);
  assert.match(strict, /proxy_protocol on;/);
  const denyOnly = renderPortBlock(9003, link, { ...settings, deny: ["192.0.2.0/24"] }, features);
  assert.doesNotMatch(denyOnly, /deny all/, "a deny list alone lets the others in");
});

test("sizeNginx() gives the workers room for every port's cap, within the open-files limit", () => {
  const roomy = sizeNginx(settings, 10, 1_048_576);
  assert.equal(roomy.capped, false);
  assert.ok(roomy.workerConnections >= 2 * 10 * settings.maxConnections, "two connections per relayed one, one worker may get them all");
  assert.ok(roomy.rlimitNofile > roomy.workerConnections);
  const tight = sizeNginx(settings, 10, 4096);
  assert.equal(tight.capped, true);
  assert.ok(tight.rlimitNofile <= 4096, "never more descriptors than the gateway may give");
});

test("ports, names, backends, masks and ranges follow their rules; anything that could change nginx's syntax is refused", () => {
  const range = parsePortRange("9000-9009");
  assert.deepEqual(range, { first: 9000, last: 9009 });
  assert.deepEqual(parsePortRange("9000"), { first: 9000, last: 9000 });
  for (const bad of ["9009-9000", "0-10", "9000-70000", "a-b", "9000 - 9009", ""]) assert.throws(() => parsePortRange(bad), /FIRST-LAST/, bad);
  assert.equal(checkPort("9009", range), 9009, "the upper end is in the range");
  for (const bad of ["8999", "9010", "90a0", "9000;", " 9000", 9000.5, -1]) assert.throws(() => checkPort(bad, range), /a port is a whole number from 9000 to 9009/, String(bad));
  assert.equal(checkStreamName("my-db-2"), "my-db-2");
  for (const bad of ["", "A", "a;b", "a b", "x".repeat(33), "a\nb", 7]) assert.throws(() => checkStreamName(bad), /stream name/, String(bad));
  const sockets = "/run/conductor/sockets";
  for (const good of ["db.example.org:5432", "10.1.2.3:22", "[2001:db8::1]:80", "localhost:1", "unix:/run/conductor/sockets/ab/socket"]) {
    assert.equal(checkBackend(good, sockets), good);
  }
  for (const bad of ["db:0", "db:65536", "db", "a;b:80", "a b:80", "db:80;", "db:80}", "{db}:80", "\"db\":80", "$host:80", "db:80\nx", "-db:80", "2001:db8::1:80",
    "unix:/etc/passwd", "unix:/run/conductor/sockets/../x", "unix:/run/conductor/sockets", "unix:/run/conductor/sockets/",
    // Numbers the C library reads as IPv4 addresses: 127.0.0.1 in disguise.
    "2130706433:22", "0x7f000001:22", "127.1:22", "0177.0.0.1:22", "10.1.2.3.4:22", "unix:/run/conductor/socketsX/a", "unix:/run/conductor/sockets/a;b", "unix:relative"]) {
    assert.throws(() => checkBackend(bad, sockets), /Cannot use backend/, bad);
  }
  for (const good of ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "all"]) assert.equal(checkCidr(good, "--stream-allow"), good);
  for (const bad of ["10.0.0.0/33", "2001:db8::/129", "10.0.0.0/8;", "any", "10.0.0.0/8 deny"]) assert.throws(() => checkCidr(bad, "--stream-allow"), /--stream-allow takes/, bad);
});

test("nginx's main configuration loads the module by absolute path (or nothing when built in), logs to its file, keeps the workers in its prefix, and names the workers' user only when asked", () => {
  const paths = { prefix: "/run/conductor/nginx", streamDir: "/run/conductor/nginx/stream.d", pidFile: "/run/conductor/nginx/nginx.pid", errorLog: "/run/conductor/nginx/error.log" };
  const sizing = { workerConnections: 20_544, rlimitNofile: 20_618 };
  const plain = renderMainConfig(settings, paths, sizing);
  assert.match(plain, /^load_module \/usr\/lib\/nginx\/modules\/ngx_stream_module\.so;$/m);
  assert.match(plain, /^error_log \/run\/conductor\/nginx\/error\.log notice;$/m);
  assert.match(plain, /^pid \/run\/conductor\/nginx\/nginx\.pid;$/m);
  assert.match(plain, /^working_directory \/run\/conductor\/nginx;$/m, "the workers' directory marks them as the gateway's");
  assert.match(plain, /^worker_processes auto;$/m);
  assert.match(plain, /^worker_rlimit_nofile 20618;$/m);
  assert.match(plain, /worker_connections 20544;/);
  assert.doesNotMatch(plain, /daemon off/, "it outlives the gateway");
  assert.match(plain, /^\s+include \/run\/conductor\/nginx\/stream\.d\/_conductor_\*\.conf;$/m);
  assert.doesNotMatch(plain, /^user /m, "an unprivileged nginx keeps its own user");
  // Started by root, nginx would switch its workers to nobody, who cannot enter the socket directories.
  assert.match(renderMainConfig(settings, paths, sizing, { name: "root", group: "conductor" }), /^user root conductor;$/m);
  assert.doesNotMatch(renderMainConfig({ ...settings, module: BUILTIN_MODULE }, paths, sizing), /load_module/);
});

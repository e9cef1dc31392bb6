/**
 * Per-service TLS: an ECDSA P-256 key and a self-signed X.509 v3
 * certificate made with node:crypto alone (Node can sign but not build
 * certificates, so the DER is written here), for apps that serve TLS
 * themselves; clients pin it by its SHA-256 fingerprint.
 *
 * @module
 */
import { generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ensurePrivateDir } from "../state/private_dir.ts";

/** A certificate and its key, as PEM files, with the certificate's fingerprint. */
export interface ServiceCertificate {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as `AA:BB:...`. */
  fingerprint: string;
}

// DER encoding, only what a certificate needs.
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}
const seq = (...items: Buffer[]): Buffer => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => der(0x31, Buffer.concat(items));
const explicit = (n: number, item: Buffer): Buffer => der(0xa0 + n, item);
const octets = (b: Buffer): Buffer => der(0x04, b);
const utf8 = (s: string): Buffer => der(0x0c, Buffer.from(s, "utf8"));
const bool = (v: boolean): Buffer => der(0x01, Buffer.from([v ? 0xff : 0]));
const bits = (b: Buffer): Buffer => der(0x03, Buffer.concat([Buffer.from([0]), b]));

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const trimmed = b.subarray(i);
  return der(0x02, trimmed[0] & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const bytes = [40 * parts[0] + parts[1]];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) stack.unshift((v & 0x7f) | 0x80);
    bytes.push(...stack);
  }
  return der(0x06, Buffer.from(bytes));
}

function time(date: Date): Buffer {
  const iso = date.toISOString();
  const compact = iso.slice(0, 19).replace(/[-:T]/g, "") + "Z";
  // UTCTime (YYMMDDHHMMSSZ) until 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(compact.slice(2), "ascii")) : der(0x18, Buffer.from(compact, "ascii"));
}

const ECDSA_WITH_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

/** Builds a self-signed certificate for `commonName`, valid for `days`, naming `dnsNames`, signed with `key`. */
export function selfSignedCertificate(commonName: string, dnsNames: string[], key: { privateKey: KeyObject; publicKey: KeyObject }, days = 365): string {
  const name = seq(set(seq(oid("2.5.4.3"), utf8(commonName))));
  const now = Date.now();
  const san = seq(...dnsNames.map((d) => der(0x82, Buffer.from(d, "ascii"))));
  const extensions = seq(
    seq(oid("2.5.29.19"), bool(true), octets(seq())),
    seq(oid("2.5.29.15"), bool(true), octets(bits(Buffer.from([0x80])))),
    seq(oid("2.5.29.37"), octets(seq(oid("1.3.6.1.5.5.7.3.1")))),
    seq(oid("2.5.29.17"), octets(san)),
  );
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_WITH_SHA256,
    name,
    seq(time(new Date(now - 60_000)), time(new Date(now + days * 86_400_000))),
    name,
    key.publicKey.export({ type: "spki", format: "der" }),
    explicit(3, extensions),
  );
  const signature = sign("sha256", tbs, key.privateKey);
  const cert = seq(tbs, ECDSA_WITH_SHA256, bits(signature));
  const b64 = cert.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * The certificate of service `name` in `dir` (`<name>.tls/cert.pem` and
 * `key.pem`, mode 0600): the existing one while it is valid for another
 * day, so pins stay stable across runs, else a new one.
 */
export async function serviceCertificate(dir: string, name: string): Promise<ServiceCertificate> {
  const tlsDir = await ensurePrivateDir(join(dir, `${name}.tls`));
  const certPath = join(tlsDir, "cert.pem");
  const keyPath = join(tlsDir, "key.pem");
  try {
    const existing = new X509Certificate(await fs.readFile(certPath));
    await fs.access(keyPath);
    if (Date.parse(existing.validTo) > Date.now() + 86_400_000) return { cert: certPath, key: keyPath, fingerprint: existing.fingerprint256 };
  } catch { /* none yet, or unusable: make one */ }
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = selfSignedCertificate(name, [name, "localhost"], pair);
  await fs.writeFile(keyPath, pair.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  await fs.chmod(keyPath, 0o600);
  await fs.writeFile(certPath, pem, { mode: 0o600 });
  await fs.chmod(certPath, 0o600);
  return { cert: certPath, key: keyPath, fingerprint: new X509Certificate(pem).fingerprint256 };
}

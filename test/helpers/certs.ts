/**
 * Throwaway certificates for tests, made with the openssl command: a CA,
 * certificates it issues, and self-signed ones.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { defer, type Cleanup } from "./cleanup.ts";

/** A certificate and its key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
  /** SHA-256 fingerprint as Node prints it (AA:BB:...). */
  fingerprint: string;
}

/** A directory for certificate files, world-readable (the gateway runs as another user); removed when `t` ends. */
export function certDir(t: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), "conductor-certs-"));
  chmodSync(dir, 0o755);
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A self-signed certificate for `cn` with the given DNS names, valid for a day. */
export function selfSigned(dir: string, name: string, cn: string, dnsNames: string[] = []): CertFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", `/CN=${cn}`, "-keyout", key, "-out", cert];
  if (dnsNames.length > 0) args.push("-addext", `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(",")}`);
  execFileSync("openssl", args, { stdio: "pipe" });
  return finish(cert, key);
}

/** A CA certificate (self-signed, CA:TRUE) valid for a day. */
export function makeCa(dir: string, name = "ca"): CertFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", `/CN=conductor test CA ${name}`, "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", key, "-out", cert], { stdio: "pipe" });
  return finish(cert, key);
}

/** A server certificate for `dnsNames` issued by `ca`. */
export function issue(dir: string, ca: CertFiles, name: string, dnsNames: string[]): CertFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  execFileSync("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-subj", `/CN=${dnsNames[0]}`, "-keyout", key, "-out", csr], { stdio: "pipe" });
  execFileSync("sh", ["-c", 'printf "%s\\n" "$1" > "$2"', "sh",
    `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(",")}\nextendedKeyUsage=serverAuth`, ext]);
  execFileSync("openssl", ["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
    "-days", "1", "-extfile", ext, "-out", cert], { stdio: "pipe" });
  return finish(cert, key);
}

function finish(cert: string, key: string): CertFiles {
  chmodSync(cert, 0o644);
  chmodSync(key, 0o644);
  return { cert, key, fingerprint: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

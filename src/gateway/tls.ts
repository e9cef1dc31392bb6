/**
 * TLS settings of the front end: certificate, key and the optional allow-list
 * of client certificates, read from files and re-read on SIGHUP.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { ConductorError, messageOf } from "../lib/errors.ts";

/** Paths of the TLS files, as given on the command line. */
export interface TlsFiles {
  /** PEM certificate chain (`--ssl-cert-file`). */
  certFile: string;
  /** PEM private key (`--ssl-key-file`). */
  keyFile: string;
  /**
   * PEM certificates of clients that may connect (`--ssl-allowed-clients`):
   * self-signed client certificates or the CAs that issued them.
   */
  allowedClientsFile?: string;
}

/**
 * Reads the TLS files and checks that they form a usable context. Throws
 * `CONDUCTOR_ERR_TLS` naming the file that is wrong.
 */
export async function loadTls(files: TlsFiles): Promise<SecureContextOptions> {
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new ConductorError("CONDUCTOR_ERR_TLS", `Cannot read ${what} ${path}: ${messageOf(err)}`, { cause: err });
    }
  };
  const cert = await read(files.certFile, "certificate file");
  const key = await read(files.keyFile, "key file");
  const options: SecureContextOptions = { cert, key };
  if (files.allowedClientsFile !== undefined) {
    options.ca = await read(files.allowedClientsFile, "allowed-clients file");
    if (!options.ca.includes("-----BEGIN CERTIFICATE-----")) {
      throw new ConductorError("CONDUCTOR_ERR_TLS", `Cannot use allowed-clients file ${files.allowedClientsFile}: it holds no PEM certificate`);
    }
  }
  try {
    createSecureContext(options);
  } catch (err) {
    throw new ConductorError("CONDUCTOR_ERR_TLS",
      `Cannot use TLS files ${files.certFile} and ${files.keyFile}${files.allowedClientsFile ? " and " + files.allowedClientsFile : ""}: ${messageOf(err)}`, { cause: err });
  }
  return options;
}

;;; conductor as a GNU Guix package, built from this source tree.
;;;
;;; From a git checkout (it builds from the TypeScript sources in src/, which
;;; the release tarball leaves out):
;;;
;;;   guix build -f contrib/guix/conductor.scm        # build, print the store item
;;;   guix package -f contrib/guix/conductor.scm      # install into your profile
;;;   guix shell -f contrib/guix/conductor.scm -- conductor --version
;;;
;;; This file evaluates to the package, its last expression.  The gateway's
;;; system service, conductor-server under Shepherd, is in service.scm beside
;;; it; that file loads this one.
;;;
;;; What it installs is what `make install' installs from the release tarball:
;;; the JavaScript in lib/conductor/, the launchers bin/conductor and
;;; sbin/conductor-server (which run the Node.js given here), the manual pages,
;;; and README.md, LICENSE and contrib/ in share/doc/conductor-VERSION/.
;;;
;;; Runtime needs: Node.js 18.19 or later (node-lts), OpenSSH's `ssh' (the
;;; client spawns it) and glibc's `getent' (the gateway resolves accounts
;;; through NSS with it; it is in the bin/ of Guix's glibc package).  The
;;; launchers are wrapped so that both are found even when PATH lacks them;
;;; a `ssh' or `getent' earlier on PATH still wins.  The gateway's host also
;;; needs sshd (openssh-service-type) and usually nginx in front of it
;;; (nginx-service-type, optional: conductor-server can serve TLS itself);
;;; service.scm says how.

(use-modules (guix packages)
             (guix gexp)
             (guix utils)                       ;current-source-directory
             (guix build-system node)
             ((guix licenses) #:prefix license:)
             (gnu packages bash)                ;bash-minimal, for the wrappers
             (gnu packages node)                ;node-lts
             (gnu packages ssh)                 ;openssh
             (gnu packages web)                 ;esbuild
             (ice-9 match)
             (ice-9 rdelim)
             (ice-9 regex))

(define %checkout
  ;; The top directory of this source tree, written as `local-file' below
  ;; resolves "../.." (so that the file names it hands to #:select? start
  ;; with it).
  (string-append (current-source-directory) "/../.."))

(define %conductor-version
  ;; The version the sources declare, where `make' and `conductor --version'
  ;; read it: src/lib/version.ts.
  (call-with-input-file
      (let ((file (string-append %checkout "/src/lib/version.ts")))
        (unless (file-exists? file)
          (error "conductor.scm builds from a git checkout's src/; missing:"
                 file))
        file)
    (lambda (port)
      (let loop ((line (read-line port)))
        (cond ((eof-object? line)
               (error "conductor.scm: no VERSION in src/lib/version.ts"))
              ((string-match "^export const VERSION = \"(.*)\";$" line)
               => (lambda (m) (match:substring m 1)))
              (else (loop (read-line port))))))))

(define %source-entries
  ;; The top-level entries of the checkout that the build reads.  Left out:
  ;; node_modules/ and dist/ (npm's and tsc's), lib/ (make's output),
  ;; .git/, release tarballs and test output.
  '("src" "test" "make" "man" "contrib"
    "Makefile" "README.md" "LICENSE" "package.json" "tsconfig.json"))

(define %checkout-roots
  ;; The checkout's directory as written above, and without "..".
  (list %checkout (canonicalize-path %checkout)))

(define (checkout-entry file)
  "Return the top-level entry of the checkout that holds FILE, e.g. \"src\"
for \"CHECKOUT/src/mod.ts\"."
  (let loop ((roots %checkout-roots))
    (match roots
      (()
       (error "conductor.scm: file outside the checkout" file))
      ((root . rest)
       (let ((prefix (string-append root "/")))
         (if (string-prefix? prefix file)
             (let ((relative (string-drop file (string-length prefix))))
               (match (string-index relative #\/)
                 (#f relative)
                 (slash (string-take relative slash))))
             (loop rest)))))))

(define (conductor-source-file? file stat)
  (and (member (checkout-entry file) %source-entries) #t))

(define conductor
  (package
    (name "conductor")
    (version %conductor-version)
    (source (local-file "../.." "conductor-checkout"
                        #:recursive? #t
                        #:select? conductor-source-file?))
    (build-system node-build-system)
    (arguments
     (list
      #:modules '((guix build node-build-system)
                  (guix build utils)
                  (ice-9 match)
                  (ice-9 popen)
                  (ice-9 regex)
                  (ice-9 textual-ports)
                  (srfi srfi-1))
      #:phases
      #~(modify-phases %standard-phases
          ;; typescript, tsx and @types/node serve `npm run build' and the
          ;; test suite; Guix packages none of them, and 'build uses esbuild
          ;; instead.  conductor has no runtime dependency, so the standard
          ;; 'configure (npm install --offline) then installs nothing: it
          ;; checks that nothing from the npm registry is needed.
          (add-after 'patch-dependencies 'delete-dev-dependencies
            (lambda _
              (modify-json (delete-dev-dependencies))))
          (replace 'build
            (lambda _
              ;; Guix has no TypeScript compiler; esbuild strips the types.
              ;; The sources use erasable syntax only (tsconfig.json:
              ;; erasableSyntaxOnly), so stripping is all tsc's output
              ;; does too.  esbuild runs file by file, without bundling, so
              ;; that lib/conductor/ keeps the tree of src/ (mod.js is the
              ;; library's entry point, bin/*.js the programs').  It keeps
              ;; import specifiers as written, and the sources import
              ;; "./x.ts" (tsc rewrites those with
              ;; rewriteRelativeImportExtensions, which esbuild does not
              ;; implement), so the relative ones are rewritten to ".js"
              ;; below; bundling would have resolved them, but into one
              ;; file per program, not the layout `make install' and the
              ;; library's users expect.
              ;;
              ;; Compiled with them: the unit tests, those whose relative
              ;; imports all reach into src/ (none of test/helpers/, which
              ;; start sshd, nginx and accounts) and that spawn no program.
              (define (relative-imports file)
                (map (lambda (m) (match:substring m 1))
                     (list-matches "\"(\\.\\.?/[^\"]*\\.ts)\""
                                   (call-with-input-file file
                                     get-string-all))))
              (define (unit-test? file)
                (and (every (lambda (specifier)
                              (string-prefix? "../../src/" specifier))
                            (relative-imports file))
                     (not (string-contains
                           (call-with-input-file file get-string-all)
                           "child_process"))))
              (apply invoke "esbuild"
                     "--log-level=warning"
                     "--format=esm" "--platform=node" "--target=node18"
                     "--outbase=." "--outdir=build"
                     (append (find-files "src" "\\.ts$")
                             (filter unit-test?
                                     (find-files "test" "_test\\.ts$"))))
              (let ((compiled (find-files "build" "\\.js$")))
                (substitute* compiled
                  (("(from|import)([ (]*)\"(\\.\\.?/[^\"]*)\\.ts\""
                    _ keyword space specifier)
                   (string-append keyword space "\"" specifier ".js\"")))
                (for-each
                 (lambda (file)
                   (when (string-match "(from|import)[ (]*\"\\.[^\"]*\\.ts\""
                                       (call-with-input-file file
                                         get-string-all))
                     (error "relative .ts import left in" file)))
                 compiled))
              ;; The release tarball's layout, which `make install' takes
              ;; as it is: lib/conductor/ and its package.json.  The
              ;; top-level package.json says "type": "module" for build/.
              (copy-recursively "build/src" "lib/conductor")
              (call-with-output-file "lib/conductor/package.json"
                (lambda (port)
                  (format port "{~%  \"name\": \"conductor\",~%  \
\"version\": ~s,~%  \"private\": true,~%  \"type\": \"module\"~%}~%"
                          #$%conductor-version)))))
          (replace 'check
            (lambda* (#:key tests? #:allow-other-keys)
              ;; The project's other tests need root (they run the gateway
              ;; and clients as other users), sshd, nginx or a browser;
              ;; the unit tests 'build compiled need none of them.  The
              ;; programs themselves are tried once installed, below.
              (if tests?
                  (match (find-files "build/test" "_test\\.js$")
                    (() (error "no unit test was compiled"))
                    (tests (apply invoke "node" "--test" tests)))
                  (format #t "test suite not run~%"))))
          ;; 'install below installs the `make install' way, not as an npm
          ;; package in lib/node_modules/.
          (delete 'repack)
          (delete 'avoid-node-gyp-rebuild)
          (replace 'install
            (lambda* (#:key inputs #:allow-other-keys)
              ;; Without src/ the Makefile takes the tree for the release
              ;; tarball and installs lib/conductor/ as it is (no tsc).
              ;; VERSION is given because the Makefile reads it from
              ;; src/lib/version.ts or from tsc's lib/conductor/lib/version.js,
              ;; and esbuild writes that file's export differently.
              (delete-file-recursively "src")
              (invoke "make" "install"
                      (string-append "PREFIX=" #$output)
                      ;; Guix's place for documentation, where
                      ;; 'install-license-files puts LICENSE too.
                      (string-append "docdir=" #$output "/share/doc/conductor-"
                                     #$%conductor-version)
                      (string-append "NODE="
                                     (search-input-file inputs "/bin/node"))
                      (string-append "VERSION=" #$%conductor-version))))
          (add-after 'install 'wrap-programs
            (lambda* (#:key inputs #:allow-other-keys)
              ;; `ssh' for the client, `getent' for the gateway, when PATH
              ;; has none (a Shepherd service's PATH is short).
              (let ((path (map (lambda (program)
                                 (dirname (search-input-file inputs program)))
                               '("/bin/ssh" "/bin/getent"))))
                (for-each (lambda (program)
                            (wrap-program (string-append #$output program)
                              #:sh (search-input-file inputs "/bin/bash")
                              `("PATH" ":" suffix ,path)))
                          '("/bin/conductor" "/sbin/conductor-server")))))
          (add-after 'wrap-programs 'check-installed-programs
            (lambda* (#:key tests? #:allow-other-keys)
              ;; What a user runs first, through the wrappers and the
              ;; launchers: the launchers also refuse a Node.js older than
              ;; 18.19 (package.json's "engines"), so this fails if node-lts ever is.
              (define (output-of program . arguments)
                (let* ((port (apply open-pipe* OPEN_READ
                                    (string-append #$output program)
                                    arguments))
                       (text (get-string-all port)))
                  (unless (zero? (status:exit-val (close-pipe port)))
                    (error "failed:" program arguments))
                  text))
              (when tests?
                (let ((version (output-of "/bin/conductor" "--version"))
                      (help (output-of "/sbin/conductor-server" "--help")))
                  (unless (string=? version
                                    (string-append "conductor "
                                                   #$%conductor-version "\n"))
                    (error "conductor --version printed" version))
                  (unless (string-contains help "Usage: conductor-server")
                    (error "conductor-server --help printed" help)))))))))
    (native-inputs (list esbuild))
    (inputs (list bash-minimal node-lts openssh))
    ;; The project names no web site of its own in README.md or
    ;; package.json; whoever publishes it sets this.
    (home-page "https://example.org/conductor")
    (synopsis "Publish web apps from compute nodes on a gateway over OpenSSH")
    (description
     "With conductor, cluster users publish web apps that run on compute
nodes, such as Jupyter, RStudio or code-server, at
@indicateurl{https://KEY-USER.example.org/} on a public gateway, without
opening a TCP port on the compute node.  The app listens on a UNIX domain
socket, OpenSSH carries that socket to the gateway, and
@command{conductor-server} routes browsers to it behind a per-app cookie,
with keep-alive pools, websockets and TLS client certificates.  The client,
@command{conductor}, runs the app and keeps its route alive.")
    (license license:expat)))

conductor

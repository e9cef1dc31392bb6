;;; conductor-server as a GNU Guix System service, run by Shepherd.
;;;
;;; This file is no Guile module: load it, by its absolute file name, from
;;; the operating-system configuration of the gateway.  It loads
;;; conductor.scm beside it (the package) and defines, in the configuration's
;;; module, `conductor-service-type' and `conductor-configuration' (and the
;;; package as `conductor').  For example, behind nginx:
;;;
;;;   (use-modules (gnu))
;;;   (use-service-modules networking ssh web)
;;;   (load "/src/conductor/contrib/guix/service.scm")
;;;
;;;   (define %conductor-nginx-lines
;;;     ;; Your copy of contrib/nginx-conductor.conf (map, upstream and server
;;;     ;; blocks, for nginx's http block: TLS for *.apps.example.org), with
;;;     ;; the upstream's server changed to unix:/var/run/conductor/http.sock.
;;;     "...")
;;;
;;;   (operating-system
;;;     ...
;;;     (services
;;;      (append
;;;       (list (service conductor-service-type
;;;                      (conductor-configuration
;;;                       (domains '("{key}-{user}.apps.example.org"))))
;;;             ;; Clients forward their apps' sockets through sshd; these
;;;             ;; are the lines of contrib/sshd_config.conductor (socket
;;;             ;; forwarding and TCP forwarding stay on, the defaults).
;;;             (service openssh-service-type
;;;                      (openssh-configuration
;;;                       (extra-content "StreamLocalBindMask 0117
;;; ClientAliveInterval 30
;;; ClientAliveCountMax 3")))
;;;             ;; nginx terminates TLS and passes everything, websockets
;;;             ;; and long-lived streams included, to the gateway's socket.
;;;             (service nginx-service-type
;;;                      (nginx-configuration
;;;                       (extra-content %conductor-nginx-lines))))
;;;       %base-services)))
;;;
;;; Then `guix system reconfigure' creates the account `conductor' (group
;;; `conductor', which nobody else may join: its members can connect to every
;;; app socket), the directories, and the Shepherd service `conductor-server';
;;; `herd status conductor-server', `herd reload conductor-server' (re-reads
;;; the TLS files), and the log in /var/log/conductor-server.log.
;;;
;;; The front end.  By default the gateway listens on the UNIX socket
;;; /var/run/conductor/http.sock (mode 0660) and gives it to group `nginx',
;;; the group of nginx-service-type's workers; the account `conductor' joins
;;; that group for it (so the group must exist: nginx-service-type creates
;;; it).  The gateway runs unprivileged, so the socket lives in a directory
;;; it owns, not in /run itself as with systemd's socket unit.  Without nginx,
;;; set `socket' to #f and pass the port and TLS files (readable by the
;;; account `conductor') in `extra-options':
;;;
;;;   (conductor-configuration
;;;    (domains '("{key}-{user}.apps.example.org"))
;;;    (socket #f)
;;;    (extra-options '("--port" "8443"
;;;                     "--ssl-cert-file" "/etc/certs/apps.example.org/fullchain.pem"
;;;                     "--ssl-key-file" "/etc/certs/apps.example.org/privkey.pem")))
;;;
;;; The runtime directory is /var/run/conductor, the server's and the
;;; clients' default (clients reach the control socket
;;; /var/run/conductor/client over SSH); on Guix System /var/run is not a
;;; link to /run.  Both /var/run and /run are emptied at boot; the activation
;;; below makes the directories again.

(use-modules (gnu services)
             (gnu services configuration)
             (gnu services shepherd)
             (gnu system shadow)                ;user-account, account-service-type
             ((gnu packages admin) #:select (shadow))
             ((gnu packages web) #:select (nginx))
             (guix gexp)
             (guix records)                     ;match-record
             (ice-9 match)
             (srfi srfi-1))

(load "conductor.scm")                  ;defines `conductor', the package

(define (string-or-false? value)
  (or (string? value) (not value)))

(define (file-like-or-false? value)
  (or (file-like? value) (not value)))

(define-configuration/no-serialization conductor-configuration
  (package
   (file-like conductor)
   "The conductor package whose @command{conductor-server} runs.")
  (runtime-directory
   (string "/var/run/conductor")
   "Directory of the control socket @file{client} and of the clients'
directories @file{sockets/}; created owned by @code{conductor}, mode 0755
(each user's sshd enters it to place the forwarded sockets).")
  (state-directory
   (string "/var/lib/conductor")
   "Directory that keeps each user's routes across restarts; created owned by
@code{conductor}, mode 0700.")
  (domains
   (list-of-strings '())
   "Patterns under which routes are published, each holding @code{@{key@}}
and @code{@{user@}} once, e.g. @code{\"@{key@}-@{user@}.apps.example.org\"}.
Empty means the server's default, @code{@{key@}-@{user@}.localhost:PORT}.")
  (socket
   (string-or-false "/var/run/conductor/http.sock")
   "UNIX socket of the front end, for a reverse proxy; its directory must be
writable by @code{conductor} (it is made if missing).  @code{#f} to listen on a
TCP port instead, given in @code{extra-options}.")
  (socket-group
   (string-or-false "nginx")
   "Group given the front socket, the reverse proxy's; the account
@code{conductor} joins it.  Never the group @code{conductor}.  @code{#f} leaves
the socket in group @code{conductor}.")
  (trust-forwarded?
   (boolean #f)
   "Whether to keep X-Forwarded-For/-Proto/-Host from requests.  With
@code{socket} set the server trusts them anyway (only the proxy reaches the
socket); leave it @code{#f} when browsers connect to the gateway directly.")
  (streams-nginx
   (file-like-or-false nginx)
   "The nginx that relays TCP streams (@command{conductor --tcp}); the
gateway runs it as @code{conductor}, on ports 9000-9009 unless
@code{extra-options} give a @code{\"--port-range\"}.  Guix's nginx has the
stream module built in.  @code{#f} publishes web apps only.")
  (log-file
   (string "/var/log/conductor-server.log")
   "File that receives the server's output (JSON lines).")
  (extra-options
   (list-of-strings '())
   "Further options of @command{conductor-server}, e.g. @code{\"--port\"},
@code{\"--ssl-cert-file\"}, @code{\"--max-routes-per-user\"} or
@code{\"--verbose\"}; see conductor-server(8)."))

(define (conductor-server-command config)
  "The command line of conductor-server for CONFIG."
  (match-record config <conductor-configuration>
    (package runtime-directory state-directory domains socket socket-group
             trust-forwarded? streams-nginx extra-options)
    `(,(file-append package "/sbin/conductor-server")
      "--runtime-dir" ,runtime-directory
      "--state-dir" ,state-directory
      ,@(append-map (lambda (domain) (list "--domain" domain)) domains)
      ,@(if socket (list "--sock" socket) '())
      ,@(if (and socket socket-group) (list "--sock-group" socket-group) '())
      ,@(if trust-forwarded? '("--trust-forwarded") '())
      ,@(if streams-nginx
            (list "--nginx" (file-append streams-nginx "/sbin/nginx")
                  "--stream-module" "builtin")
            '("--no-streams"))
      ,@extra-options)))

(define (conductor-proxy-groups config)
  "The groups, besides its own, that the gateway's account joins."
  (match-record config <conductor-configuration> (socket socket-group)
    (if (and socket socket-group) (list socket-group) '())))

(define (conductor-accounts config)
  (list (user-group
         (name "conductor")
         (system? #t))
        (user-account
         (name "conductor")
         (group "conductor")
         (supplementary-groups (conductor-proxy-groups config))
         (system? #t)
         (comment "conductor gateway")
         (home-directory (conductor-configuration-state-directory config))
         (create-home-directory? #f)
         (shell (file-append shadow "/sbin/nologin")))))

(define (conductor-activation config)
  "Make the runtime directory (0755) and the state directory (0700), owned by
conductor, and the front socket's directory if it is missing."
  (match-record config <conductor-configuration>
    (runtime-directory state-directory socket)
    #~(begin
        (use-modules (guix build utils))
        (let* ((user (getpwnam "conductor"))
               (uid (passwd:uid user))
               (gid (passwd:gid user)))
          (define (make-directory directory mode)
            (mkdir-p directory)
            (chown directory uid gid)
            (chmod directory mode))
          (make-directory #$runtime-directory #o755)
          (make-directory #$state-directory #o700)
          (let ((socket #$socket))
            (when (and socket (not (file-exists? (dirname socket))))
              (make-directory (dirname socket) #o755)))))))

(define (conductor-shepherd-service config)
  (list (shepherd-service
         (documentation "Run conductor-server, the gateway that publishes web
apps forwarded from compute nodes over SSH.")
         (provision '(conductor-server))
         (requirement '(user-processes networking))
         (start #~(make-forkexec-constructor
                   (list #$@(conductor-server-command config))
                   #:user "conductor"
                   #:group "conductor"
                   #:supplementary-groups '#$(conductor-proxy-groups config)
                   ;; The server sets every mode it needs itself.
                   #:file-creation-mask #o077
                   #:resource-limits '((nofile 65536 65536))
                   #:log-file #$(conductor-configuration-log-file config)))
         (stop #~(make-kill-destructor))
         (actions
          (list (shepherd-signal-action
                 'reload SIGHUP
                 #:documentation "Reload the TLS certificate and key."))))))

(define conductor-service-type
  (service-type
   (name 'conductor)
   (extensions
    (list (service-extension shepherd-root-service-type
                             conductor-shepherd-service)
          (service-extension account-service-type
                             conductor-accounts)
          (service-extension activation-service-type
                             conductor-activation)
          ;; conductor, conductor-server and their manual pages.
          (service-extension profile-service-type
                             (compose list conductor-configuration-package))))
   (default-value (conductor-configuration))
   (description
    "Run @command{conductor-server}, which publishes web apps that users run
on compute nodes and forward to this host over OpenSSH, at
@indicateurl{https://KEY-USER.DOMAIN/}.")))

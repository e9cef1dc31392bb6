;;; read-scheme.scm: reads every top-level datum of a Guix file with Guile's
;;; own reader, without Guix, and prints what the tests check, one fact a line.
;;;
;;;   guile-3.0 --no-auto-compile -s read-scheme.scm FILE           facts
;;;   guile-3.0 --no-auto-compile -s read-scheme.scm FILE --write   each datum, written
;;;
;;; Nothing is evaluated: Guix's modules need not be installed. The reader is
;;; taught Guix's G-expression syntax (#~ #$ #$@ #+ #+@), which (guix gexp)
;;; would register, as the forms those abbreviate: (gexp X), (ungexp X),
;;; (ungexp-splicing X), (ungexp-native X), (ungexp-native-splicing X).
;;;
;;; Facts (stdout):
;;;   forms N                 the number of top-level data
;;;   form HEAD [NAME]        each top-level datum: its first symbol, and for
;;;                           (define... NAME ...) or (define... (NAME ...) ...)
;;;                           the name
;;;   package NAME            a (package ... (name "NAME") ...) anywhere
;;;   license EXPR            the (license EXPR) of such a package
;;;   service-type VARIABLE   (define VARIABLE (service-type ...)) at top level
;;;   option --X              every string literal that starts with "--"
;;;   last DATUM              the last top-level datum, written
;;; A file that does not read (unbalanced parentheses, a bad # syntax) makes
;;; it print FILE:LINE:COLUMN and the reader's message on stderr and exit 1.

(use-modules (ice-9 match))

(define (prefixed-reader plain spliced)
  "A hash reader for #C: (PLAIN datum), or (SPLICED datum) when #C@ is used."
  (lambda (chr port)
    (if (eqv? (peek-char port) #\@)
        (begin (read-char port) (list spliced (read port)))
        (list plain (read port)))))

(read-hash-extend #\~ (lambda (chr port) (list 'gexp (read port))))
(read-hash-extend #\$ (prefixed-reader 'ungexp 'ungexp-splicing))
(read-hash-extend #\+ (prefixed-reader 'ungexp-native 'ungexp-native-splicing))

(define (read-all port)
  (let loop ((data '()))
    (let ((datum (read port)))
      (if (eof-object? datum)
          (reverse data)
          (loop (cons datum data))))))

(define (field name form)
  "The value of the first (NAME VALUE) in FORM's arguments, or #f."
  (let loop ((rest (if (pair? form) (cdr form) '())))
    (match rest
      ((((? (lambda (head) (eq? head name))) value) . _) value)
      ((_ . tail) (loop tail))
      (_ #f))))

(define (walk datum visit)
  "Calls VISIT on DATUM and on every pair and vector element inside it."
  (visit datum)
  (cond ((pair? datum)
         (walk (car datum) visit)
         (unless (null? (cdr datum))
           (if (pair? (cdr datum))
               (walk (cdr datum) visit)
               (visit (cdr datum)))))
        ((vector? datum)
         (for-each (lambda (item) (walk item visit)) (vector->list datum)))))

(define (fact . items)
  (display (string-join (map (lambda (item)
                               (if (string? item) item (object->string item)))
                             items)
                        " "))
  (newline))

(define (definition? head)
  "True for define, define-public, define*, define-configuration and the like."
  (and (symbol? head) (string-prefix? "define" (symbol->string head))))

(define (print-facts data)
  (fact "forms" (length data))
  (for-each
   (lambda (datum)
     (match datum
       (((? definition? head) (? symbol? name) . _) (fact "form" head name))
       (((? definition? head) ((? symbol? name) . _) . _) (fact "form" head name))
       (((? symbol? head) . _) (fact "form" head))
       (_ (fact "form")))
     (match datum
       (((or 'define 'define-public) (? symbol? variable) ('service-type . _))
        (fact "service-type" variable))
       (_ #f)))
   data)
  (for-each
   (lambda (datum)
     (walk datum
           (lambda (node)
             (match node
               (('package . _)
                (let ((name (field 'name node)))
                  (when (string? name)
                    (fact "package" name)
                    (let ((license (field 'license node)))
                      (when license (fact "license" license))))))
               ((? string? text)
                (when (string-prefix? "--" text) (fact "option" text)))
               (_ #f)))))
   data)
  (unless (null? data)
    (fact "last" (car (last-pair data)))))

(define (main file write?)
  (let ((data (catch 'read-error
                (lambda ()
                  (call-with-input-file file
                    (lambda (port)
                      (set-port-filename! port file)
                      (read-all port))))
                (lambda (key subr message arguments . rest)
                  (apply format (current-error-port) message arguments)
                  (newline (current-error-port))
                  (exit 1)))))
    (if write?
        (for-each (lambda (datum) (write datum) (newline)) data)
        (print-facts data))))

(match (command-line)
  ((_ file) (main file #f))
  ((_ file "--write") (main file #t))
  (_ (format (current-error-port) "usage: read-scheme.scm FILE [--write]~%")
     (exit 2)))

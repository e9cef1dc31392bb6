# conductor: build, release tarball, install.
#
# From a release tarball (prebuilt JavaScript in lib/conductor, no npm needed):
#   make demo                   # the whole chain on loopback: sshd, gateway, a sample app (Ctrl-C stops it)
#   make check                  # the same as a self-test: stops by itself, exits 0 when the chain works
#   make install [PREFIX=/usr/local] [DESTDIR=...] [NODE=/usr/bin/node]
#   make install-systemd        # the gateway's units, into $(systemdunitdir)
#   make uninstall              # removes exactly what install put there
# From the git tree (needs `npm ci` once, for the TypeScript compiler):
#   make                        # compiles into lib/conductor
#   make dist                   # conductor-VERSION.tar.gz, byte-identical for one commit
#
# GNU conventions: PREFIX, DESTDIR, bindir, sbindir, libdir, mandir, docdir.

PREFIX ?= /usr/local
prefix = $(PREFIX)
exec_prefix = $(prefix)
bindir = $(exec_prefix)/bin
sbindir = $(exec_prefix)/sbin
libdir = $(exec_prefix)/lib
datarootdir = $(prefix)/share
mandir = $(datarootdir)/man
docdir = $(datarootdir)/doc/conductor
systemdunitdir = $(prefix)/lib/systemd/system
systemduserunitdir = $(prefix)/lib/systemd/user
pkglibdir = $(libdir)/conductor
# The interpreter written into the launchers' first line.
NODE = /usr/bin/env node
INSTALL = install
TSC = node_modules/.bin/tsc

# The version, from the sources (git tree) or from the compiled JavaScript (tarball).
VERSION := $(shell sed -n 's/^export const VERSION = "\(.*\)";$$/\1/p' src/lib/version.ts lib/conductor/lib/version.js 2>/dev/null | head -n 1)
# The oldest Node.js that runs conductor: package.json's "engines" (git tree), copied into lib/conductor (tarball).
NODE_MIN := $(shell sed -n 's/.*"node": ">=\([0-9.]*\)".*/\1/p' package.json lib/conductor/package.json 2>/dev/null | head -n 1)
# Release timestamps: the last commit's time, so two builds of one commit are identical.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

MAN_PAGES = man/conductor.1 man/conductor-agent.1 man/conductor.7 man/conductor-server.8
DOCS = README.md LICENSE
UNITS = contrib/systemd/conductor-server.service contrib/systemd/conductor-server.socket
DIST = conductor-$(VERSION)

.PHONY: all demo check dist install install-systemd uninstall clean

all: lib/conductor/package.json

ifneq ($(wildcard src/bin/conductor.ts),)
# The git tree: compile the sources and gather the JavaScript that runs.
dist/src/bin/conductor.js: $(shell find src -name '*.ts') package.json tsconfig.json
	@test -x $(TSC) || { echo "make: $(TSC) is missing: run 'npm ci' first (or install from the release tarball, which needs no npm)" >&2; exit 1; }
	$(TSC) -p .
	touch $@

lib/conductor/package.json: dist/src/bin/conductor.js
	rm -rf lib/conductor
	mkdir -p lib/conductor
	cd src && find . -name '*.ts' | while read -r f; do \
	    mkdir -p "../lib/conductor/$${f%/*}" && cp "../dist/src/$${f%.ts}.js" "../lib/conductor/$${f%.ts}.js" || exit 1; \
	done
	printf '{\n  "name": "conductor",\n  "version": "%s",\n  "private": true,\n  "type": "module",\n  "engines": { "node": ">=%s" }\n}\n' '$(VERSION)' '$(NODE_MIN)' > $@
endif

# The demo needs node and OpenSSH's sshd only; it runs as you and keeps its files in a temporary directory.
demo: all
	$(NODE) lib/conductor/demo/main.js

check: all
	$(NODE) lib/conductor/demo/main.js --once

dist: all
	rm -rf $(DIST) $(DIST).tar.gz
	mkdir -p $(DIST)/lib $(DIST)/make
	cp -R lib/conductor $(DIST)/lib/
	cp -R man contrib $(DOCS) Makefile $(DIST)/
	cp make/launcher.in $(DIST)/make/
	tar --sort=name --format=gnu --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
	    --mode=u+rw,go=rX,a-s -cf - $(DIST) | gzip -n -9 > $(DIST).tar.gz
	rm -rf $(DIST)
	@echo "made $(DIST).tar.gz"

install: all
	$(INSTALL) -d $(DESTDIR)$(pkglibdir) $(DESTDIR)$(bindir) $(DESTDIR)$(sbindir) \
	    $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man7 $(DESTDIR)$(mandir)/man8 $(DESTDIR)$(docdir)
	cp -R lib/conductor/. $(DESTDIR)$(pkglibdir)/
	chmod -R u+rw,go+rX,go-w $(DESTDIR)$(pkglibdir)
	$(call launcher,conductor,$(bindir))
	$(call launcher,conductor-agent,$(bindir))
	$(call launcher,conductor-server,$(sbindir))
	$(INSTALL) -m 644 man/conductor.1 man/conductor-agent.1 $(DESTDIR)$(mandir)/man1/
	$(INSTALL) -m 644 man/conductor.7 $(DESTDIR)$(mandir)/man7/
	$(INSTALL) -m 644 man/conductor-server.8 $(DESTDIR)$(mandir)/man8/
	$(INSTALL) -m 644 $(DOCS) $(DESTDIR)$(docdir)/
	cp -R contrib $(DESTDIR)$(docdir)/
	chmod -R u+rw,go+rX,go-w $(DESTDIR)$(docdir)

# $(call launcher,PROGRAM,DIR): writes DIR/PROGRAM, which finds the JavaScript relative to itself.
define launcher
	@test -n '$(NODE_MIN)' || { echo "make: cannot read the oldest Node.js from package.json's engines" >&2; exit 1; }
	sed -e 's|@NODE@|$(NODE)|' -e 's|@PROGRAM@|$(1)|g' -e 's|@VERSION@|$(VERSION)|' -e 's|@NODE_MIN@|$(NODE_MIN)|g' \
	    -e "s|@PKGLIB_REL@|$$(realpath -m --relative-to='$(2)' '$(pkglibdir)')|g" make/launcher.in > $(DESTDIR)$(2)/$(1)
	chmod 755 $(DESTDIR)$(2)/$(1)
endef

install-systemd:
	$(INSTALL) -d $(DESTDIR)$(systemdunitdir) $(DESTDIR)$(systemduserunitdir)
	for unit in $(UNITS); do \
	    sed 's|/usr/sbin/conductor-server|$(sbindir)/conductor-server|g' $$unit > $(DESTDIR)$(systemdunitdir)/$${unit##*/} && \
	    chmod 644 $(DESTDIR)$(systemdunitdir)/$${unit##*/} || exit 1; \
	done
	sed 's|/usr/bin/conductor-agent|$(bindir)/conductor-agent|g' contrib/systemd/conductor-agent.service > $(DESTDIR)$(systemduserunitdir)/conductor-agent.service
	chmod 644 $(DESTDIR)$(systemduserunitdir)/conductor-agent.service

uninstall:
	rm -f $(DESTDIR)$(bindir)/conductor $(DESTDIR)$(bindir)/conductor-agent $(DESTDIR)$(sbindir)/conductor-server
	rm -f $(DESTDIR)$(mandir)/man1/conductor.1 $(DESTDIR)$(mandir)/man1/conductor-agent.1 $(DESTDIR)$(mandir)/man7/conductor.7 $(DESTDIR)$(mandir)/man8/conductor-server.8
	rm -rf $(DESTDIR)$(pkglibdir) $(DESTDIR)$(docdir)
	for unit in $(UNITS); do rm -f $(DESTDIR)$(systemdunitdir)/$${unit##*/}; done
	rm -f $(DESTDIR)$(systemduserunitdir)/conductor-agent.service

clean:
	rm -rf lib/conductor conductor-*.tar.gz

#!/usr/bin/env python3
"""Finds starttlsd's dependencies and writes a build.ninja for one build variant.

    python3 configure.py                      # the default (checked in): build.ninja -> build/
    python3 configure.py --debug              # build-debug/build.ninja -> build-debug/
    python3 configure.py --sanitize=address,undefined   # build-asan/build.ninja -> build-asan/
    python3 configure.py --sanitize=thread    # build-tsan/build.ninja -> build-tsan/
    python3 configure.py --fuzz               # build-fuzz/build.ninja -> build-fuzz/ (clang, libFuzzer)
    python3 configure.py --check-stale        # exit 1 if the checked-in build.ninja is out of date

Every variant builds into a folder of its own. A variant other than the default writes its ninja
file into that folder (run it with `ninja -f build-asan/build.ninja`), so the checked-in
build.ninja only ever holds the default. Each generated file regenerates itself when this script
changes, with the arguments it was made with.

Only the Python standard library is used, and the ninja syntax is written by the small Writer
below.
"""

import argparse
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))

# What the daemon is made of, by folder. main.c is kept out of the library so that the tests can
# link everything else.
SOURCES = {
    "core": ["err.c", "span.c", "buf.c", "mem.c", "log.c", "timer.c", "flags.c", "snapshot.c",
             "net.c", "worker.c", "domain_table.c", "table_file.c", "admit.c", "stats.c",
             "keyop.c", "keyop_chan.c"],
    "proto": ["smtp_lex.c", "smtp_reply.c", "smtp_data.c", "ehlo.c", "relay.c", "relay_server.c", "inbound.c",
              "outbound.c", "next_hop.c", "dns.c", "alert.c", "backend_probe.c", "dest_policy.c", "routes.c",
              "proxy_proto.c", "sender_groups.c"],
    "tls": ["cert.c", "cert_write.c", "csr.c", "p12.c", "selfsign.c", "tickets.c", "ctx.c", "conn.c",
            "keyop.c"],
}
DAEMON_MAIN = "core/main.c"
# The load generator runs on the same engine.
BENCH_SOURCES = ["bench/hist.c", "bench/client.c", "bench/main.c"]
# The certificate tool runs the daemon's own checks (tls/cert.c).
CERT_TOOL_SOURCES = ["tools/cert_tool.c"]
# The key-op helper signs with Debian's OpenSSL 3 libcrypto, which is twice as fast as BoringSSL
# here (RSA-2048 and P-256 signatures). It shares only core/keyop_wire.h and core/flags.h's
# version with the daemon: linking libstarttlsd.a would pull BoringSSL into the same process.
KEYOP_SOURCES = ["tools/keyop.c"]

# Fuzz targets: one program each (libFuzzer), built only by the --fuzz variant.
FUZZ_DIR = "tests/fuzz"

# Test sources: unit tests mirror the tree, interop tests drive real programs, support is shared.
TEST_DIRS = ["tests/unit", "tests/interop", "tests/support"]


class Writer:
    """Writes ninja syntax: variables, rules and build edges, with paths escaped."""

    def __init__(self, out):
        self.out = out

    @staticmethod
    def escape_path(path):
        return path.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")

    def line(self, text=""):
        self.out.append(text + "\n")

    def comment(self, text):
        for part in text.splitlines():
            self.line("# " + part)

    def variable(self, name, value, indent=0):
        if isinstance(value, (list, tuple)):
            value = " ".join(v for v in value if v)
        self.line("  " * indent + "%s = %s" % (name, value))

    def rule(self, name, command, **kwargs):
        self.line("rule " + name)
        self.variable("command", command, 1)
        for key in ("description", "depfile", "deps", "generator", "pool", "restat"):
            if key in kwargs and kwargs[key] is not None:
                self.variable(key, kwargs[key], 1)
        self.line()

    def build(self, outputs, rule, inputs=(), implicit=(), order_only=(), variables=None):
        outputs = [outputs] if isinstance(outputs, str) else outputs
        inputs = [inputs] if isinstance(inputs, str) else inputs
        text = "build %s: %s" % (" ".join(map(self.escape_path, outputs)), rule)
        if inputs:
            text += " " + " ".join(map(self.escape_path, inputs))
        if implicit:
            text += " | " + " ".join(map(self.escape_path, implicit))
        if order_only:
            text += " || " + " ".join(map(self.escape_path, order_only))
        self.line(text)
        for key, value in (variables or {}).items():
            self.variable(key, value, 1)

    def default(self, targets):
        self.line("default " + " ".join(map(self.escape_path, targets)))


class Missing(Exception):
    pass


def multiarch(cc):
    try:
        out = subprocess.run([cc, "-print-multiarch"], capture_output=True, text=True, check=True)
        triplet = out.stdout.strip()
        if triplet:
            return triplet
    except (OSError, subprocess.CalledProcessError):
        pass
    return "x86_64-linux-gnu"


def find_dependencies(cc):
    """Returns the include and library settings, or raises Missing with the package to install."""
    arch = multiarch(cc)
    libdir = "/usr/lib/%s" % arch
    android_inc = "/usr/include/android"
    android_lib = "%s/android" % libdir
    checks = [
        ("BoringSSL headers", "%s/openssl/ssl.h" % android_inc, "android-libboringssl-dev"),
        ("BoringSSL libssl", "%s/libssl.so" % android_lib, "android-libboringssl-dev"),
        ("BoringSSL libcrypto", "%s/libcrypto.so" % android_lib, "android-libboringssl-dev"),
        ("liburing headers", "/usr/include/liburing.h", "liburing-dev"),
        ("liburing", "%s/liburing.so" % libdir, "liburing-dev"),
        ("jemalloc headers", "/usr/include/jemalloc/jemalloc.h", "libjemalloc-dev"),
        ("jemalloc", "%s/libjemalloc.so" % libdir, "libjemalloc-dev"),
        ("c-ares headers", "/usr/include/ares.h", "libc-ares-dev"),
        ("c-ares", "%s/libcares.so" % libdir, "libc-ares-dev"),
        ("Criterion headers", "/usr/include/criterion/criterion.h", "libcriterion-dev"),
        ("Criterion", "%s/libcriterion.so" % libdir, "libcriterion-dev"),
        ("OpenSSL 3 headers (for starttls-keyop)", "/usr/include/openssl/evp.h", "libssl-dev"),
        ("OpenSSL 3 libcrypto (for starttls-keyop)", "%s/libcrypto.so" % libdir, "libssl-dev"),
    ]
    for what, path, package in checks:
        if not os.path.exists(path):
            raise Missing("%s not found (%s): apt-get install %s" % (what, path, package))
    return {"android_inc": android_inc, "android_lib": android_lib}


def variant_name(args):
    if args.fuzz:
        return "fuzz"
    if args.sanitize:
        return "tsan" if "thread" in args.sanitize else "asan"
    if args.debug:
        return "debug"
    return None


def generate(args, argv):
    deps = find_dependencies(args.cc)
    variant = variant_name(args)
    builddir = args.builddir or ("build" if variant is None else "build-" + variant)
    ninja_file = "build.ninja" if variant is None and args.builddir is None else builddir + "/build.ninja"

    cflags = ["-std=gnu2x", "-g", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes",
              "-Wmissing-prototypes", "-Wvla", "-Wformat=2", "-Wno-missing-field-initializers", "-Wno-format-nonliteral",
              "-D_GNU_SOURCE", "-I.", "-fPIE", "-fstack-protector-strong", "-fno-strict-aliasing"]
    ldflags = ["-pie", "-Wl,-z,relro,-z,now"]
    libs = ["-lssl", "-lcrypto", "-luring", "-lcares", "-lpthread"]
    if args.debug:
        cflags += ["-O0", "-g3"]
    else:
        cflags += ["-O2", "-D_FORTIFY_SOURCE=2"]
    cc = args.cc
    if args.fuzz:
        # libFuzzer comes with clang: the library is instrumented for coverage, each target links
        # the fuzzer's main, and ASan + UBSan turn any defect into a crash the run reports.
        cc = "clang" if cc == "gcc" else cc
        cflags += ["-fsanitize=fuzzer-no-link,address,undefined", "-fno-omit-frame-pointer",
                   "-fno-sanitize-recover=all"]
        ldflags += ["-fsanitize=fuzzer,address,undefined"]
    elif args.sanitize:
        san = "-fsanitize=" + args.sanitize
        cflags += [san, "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
        ldflags += [san]
    # The key-op helper gets the same warnings, optimisation, hardening and sanitizers, but finds
    # <openssl/...> in /usr/include (Debian's OpenSSL 3) and links /usr/lib's libcrypto: BoringSSL's
    # include and library folders are added to the daemon's flags only, after this copy.
    keyop_cflags = list(cflags)
    keyop_ldflags = list(ldflags)
    keyop_libs = ["-lcrypto", "-lpthread"]
    cflags += ["-isystem", deps["android_inc"]]
    ldflags += ["-L" + deps["android_lib"], "-Wl,-rpath," + deps["android_lib"]]
    if not args.fuzz and not args.sanitize:
        # ASan and TSan must own malloc: jemalloc is linked only in the other variants.
        cflags += ["-DSTLS_HAVE_JEMALLOC"]
        libs += ["-ljemalloc"]

    out = []
    n = Writer(out)
    n.comment("Generated by configure.py; do not edit. Regenerates itself when configure.py "
              "changes.\nArguments: %s" % (" ".join(shlex.quote(a) for a in argv) or "(none)"))
    n.line()
    n.variable("ninja_required_version", "1.10")
    n.variable("builddir", builddir)
    n.variable("cc", cc)
    n.variable("cflags", cflags)
    n.variable("ldflags", ldflags)
    n.variable("libs", libs)
    if not args.fuzz:
        n.variable("keyop_cflags", keyop_cflags)
        n.variable("keyop_ldflags", keyop_ldflags)
        n.variable("keyop_libs", keyop_libs)
    n.line()
    n.rule("cc", "$cc -MMD -MF $out.d $cflags -c $in -o $out", description="CC $out",
           depfile="$out.d", deps="gcc")
    n.rule("ar", "rm -f $out && ar crs $out $in", description="AR $out")
    n.rule("link", "$cc $ldflags -o $out $in $extra_libs $libs", description="LINK $out")
    if not args.fuzz:
        n.rule("cc_keyop", "$cc -MMD -MF $out.d $keyop_cflags -c $in -o $out", description="CC $out",
               depfile="$out.d", deps="gcc")
        n.rule("link_keyop", "$cc $keyop_ldflags -o $out $in $keyop_libs", description="LINK $out")
    configure_cmd = "python3 configure.py" + "".join(" " + shlex.quote(a) for a in argv)
    n.rule("configure", configure_cmd, description="CONFIGURE $out", generator=1)
    n.rule("run_tests", "tools/run-tests $builddir", description="TEST $builddir", pool="console")
    n.line()
    n.build(ninja_file, "configure", implicit=["configure.py"])
    n.line()

    def compile_all(paths, rule="cc"):
        objs = []
        for src in paths:
            obj = "%s/obj/%s.o" % (builddir, src[:-2])
            n.build(obj, rule, src)
            objs.append(obj)
        return objs

    lib_sources = ["%s/%s" % (d, f) for d, files in SOURCES.items() for f in files]
    lib_objs = compile_all(lib_sources)
    lib = "%s/libstarttlsd.a" % builddir
    n.build(lib, "ar", lib_objs)
    n.line()
    if args.fuzz:
        targets = []
        for f in sorted(os.listdir(os.path.join(ROOT, FUZZ_DIR))):
            if f.endswith(".c"):
                target = "%s/fuzz-%s" % (builddir, f[:-2])
                n.build(target, "link", compile_all(["%s/%s" % (FUZZ_DIR, f)]) + [lib])
                targets.append(target)
        n.build("all", "phony", targets)
        n.default(targets)
        return ninja_file, "".join(out)
    daemon = "%s/starttlsd" % builddir
    n.build(daemon, "link", compile_all([DAEMON_MAIN]) + [lib])
    n.line()

    bench = "%s/starttls-bench" % builddir
    n.build(bench, "link", compile_all(BENCH_SOURCES) + [lib])
    micro = "%s/starttls-micro" % builddir
    n.build(micro, "link", compile_all(["bench/micro.c"]) + [lib])
    n.line()
    cert_tool = "%s/starttls-cert" % builddir
    n.build(cert_tool, "link", compile_all(CERT_TOOL_SOURCES) + [lib])
    n.line()
    keyop = "%s/starttls-keyop" % builddir
    n.build(keyop, "link_keyop", compile_all(KEYOP_SOURCES, rule="cc_keyop"))
    n.line()

    test_sources = []
    for d in TEST_DIRS:
        for dirpath, _dirs, files in sorted(os.walk(os.path.join(ROOT, d))):
            for f in sorted(files):
                if f.endswith(".c"):
                    test_sources.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
    test_sources.sort()
    tests = "%s/tests/starttlsd-tests" % builddir
    n.build(tests, "link", compile_all(test_sources) + [lib], variables={"extra_libs": "-lcriterion"})
    n.line()
    # The key-op test starts starttls-keyop from the same build folder.
    n.build("test", "run_tests", implicit=[daemon, tests, bench, cert_tool, keyop])
    n.build("all", "phony", [daemon, tests, bench, micro, cert_tool, keyop])
    n.default([daemon, tests, bench, micro, cert_tool, keyop])
    return ninja_file, "".join(out)


def main():
    parser = argparse.ArgumentParser(description="Configure the starttlsd build.")
    parser.add_argument("--debug", action="store_true", help="no optimisation, full debug info")
    parser.add_argument("--sanitize", metavar="LIST",
                        choices=["address,undefined", "address", "undefined", "thread"],
                        help="build with sanitizers: address,undefined or thread")
    parser.add_argument("--cc", default="gcc", help="C compiler [gcc]")
    parser.add_argument("--fuzz", action="store_true",
                        help="the fuzz targets in %s, with clang's libFuzzer, ASan and UBSan" % FUZZ_DIR)
    parser.add_argument("--builddir", help="build folder (default: build, build-debug, build-asan...)")
    parser.add_argument("--output", help="write the ninja file here instead of its usual place")
    parser.add_argument("--check-stale", action="store_true",
                        help="exit 1 if the checked-in build.ninja differs from what would be written")
    args = parser.parse_args()
    argv = [a for a in sys.argv[1:] if not a.startswith("--output") and a != "--check-stale"]
    os.chdir(ROOT)
    try:
        path, text = generate(args, argv)
    except Missing as err:
        print("configure.py: %s" % err, file=sys.stderr)
        return 1
    if args.check_stale:
        try:
            with open(path) as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print("configure.py: %s is stale: run `python3 configure.py` and commit it" % path,
                  file=sys.stderr)
            return 1
        return 0
    path = args.output or path
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

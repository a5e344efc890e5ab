# Installs the Debian packages the project needs, only those missing. Sourced by tools/run and
# tools/test, which must work on a fresh Debian 12 machine.

# What building the daemon needs. libssl-dev is Debian's OpenSSL 3, for starttls-keyop only: the
# key-op helper signs with its libcrypto, about twice as fast as BoringSSL's for RSA and ECDSA.
STLS_BUILD_PACKAGES="gcc libc6-dev ninja-build python3 android-libboringssl-dev liburing-dev libjemalloc-dev libcriterion-dev libc-ares-dev libssl-dev"
# What the quick start adds: swaks to send a test message (Net::SSLeay for its --tls).
STLS_RUN_PACKAGES="$STLS_BUILD_PACKAGES swaks libnet-ssleay-perl"
# What the test suite adds: the real programs the interop tests drive, the format check, clang
# with libFuzzer for the fuzz targets, and gnuplot for the smoke run of bench/run (its plot).
STLS_TEST_PACKAGES="$STLS_RUN_PACKAGES postfix openssl clang-format procps dnsmasq-base haproxy clang libclang-rt-14-dev gnuplot-nox"

stls_missing_packages() {
	local pkg missing=""
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			missing="$missing $pkg"
		fi
	done
	echo "$missing"
}

stls_install_packages() {
	local missing sudo=""
	missing=$(stls_missing_packages "$@")
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null; then
			sudo="sudo"
		else
			echo "missing Debian packages:$missing (run as root, or install them)" >&2
			return 1
		fi
	fi
	echo "installing Debian packages:$missing" >&2
	# Postfix asks how to configure itself; the tests run their own instances, so: none.
	echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2
}

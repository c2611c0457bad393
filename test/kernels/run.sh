#!/usr/bin/env bash
# Runs Vigil's kernel tests inside other kernels, booted under qemu (software
# emulation), and fails unless every package passes in every kernel.
#
#   test/kernels/run.sh [KERNEL...]      (or: make test-kernels KERNELS="...")
#
# KERNEL is a Debian package name (linux-image-6.1.0-56-amd64-unsigned) or the
# path of a kernel image (ELF vmlinux or bzImage). Default: the newest
# linux-image-6.1.0-*-amd64-unsigned apt knows. See test/kernels/README.md.
#
# Environment:
#   VIGIL_KT_PKGS=kernel,net   only these test packages (import path suffixes)
#   VIGIL_KT_RUN=REGEX         -test.run for every package (no spaces)
#   VIGIL_KT_TIMEOUT=3600      seconds per kernel before qemu is killed
#   VIGIL_KT_TEST_TIMEOUT=15m  -test.timeout per package, in the guest
#   VIGIL_KT_CACHE=DIR         downloads, builds and logs (default test/kernels/.cache)
#   VIGIL_KT_EXPECT=a,b        kernel features the tests must find (kernelcap names);
#                              default bpf_lsm,fentry for Debian kernel packages
#                              (measured), none for a kernel image given by path
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VIGIL_KT_CACHE:-$here/.cache}
host_timeout=${VIGIL_KT_TIMEOUT:-3600}
test_timeout=${VIGIL_KT_TEST_TIMEOUT:-15m}
export CGO_ENABLED=0 DEBIAN_FRONTEND=noninteractive

# The packages whose tests load BPF programs, plus any other package whose
# tests use internal/testenv (found below).
base_pkgs=(internal/sensor/process internal/sensor/file internal/sensor/cred
	internal/sensor/net internal/sensor/kernel internal/daemon)

# Programs the tests run in the guest; copied from this machine with their
# shared libraries, as is every program of coreutils. command:Debian package
# (installed when missing).
guest_tools=(bash:bash sh:dash dash:dash true:coreutils id:coreutils
	unshare:util-linux nsenter:util-linux setpriv:util-linux pivot_root:util-linux
	mount:mount umount:mount getent:libc-bin python3:python3-minimal bpftool:bpftool
	grep:grep sed:sed awk:mawk find:findutils xargs:findutils ps:procps kill:procps
	su:util-linux tar:tar gzip:gzip git:git strace:strace ssh-keygen:openssh-client apt-get:apt
	ip:iproute2)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'test-kernels: %s\n' "$*" >&2; exit 1; }

# ---- what this machine needs ----

apt_install() {
	[ "$(id -u)" = 0 ] || die "missing $*; install it (apt-get install $*) or run as root"
	log "apt-get install $*"
	if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	fi
}

ensure_host_tools() {
	local need=() t
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	command -v cpio >/dev/null || need+=(cpio)
	command -v xz >/dev/null || need+=(xz-utils)
	for t in "${guest_tools[@]}"; do
		PATH=/usr/bin:/usr/sbin:/bin:/sbin type -P "${t%%:*}" >/dev/null || need+=("${t#*:}")
	done
	[ -x /usr/bin/python3 ] || need+=(python3-minimal)
	if [ ${#need[@]} -gt 0 ]; then
		# shellcheck disable=SC2046
		apt_install $(printf '%s\n' "${need[@]}" | sort -u)
	fi
	command -v go >/dev/null || die "go is not in PATH"
	command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "needs apt-get and dpkg-deb (Debian)"
}

# ---- kernels ----

# The newest linux-image-6.1.0-N-amd64-unsigned that has an installable version.
default_kernel() {
	local try p cand
	for try in 1 2; do
		for p in $(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' | awk '{print $1}' | sort -rV); do
			cand=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
			if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
				echo "$p"
				return
			fi
		done
		if [ "$try" = 1 ] && [ "$(id -u)" = 0 ]; then
			log "apt-get update (no 6.1 kernel known)"
			apt-get update -qq
		fi
	done
	die "no linux-image-6.1.0-*-amd64-unsigned package known to apt (is bookworm in the sources?)"
}

# extract_vmlinux IMAGE OUT: the ELF kernel inside a bzImage, which qemu boots
# directly (PVH entry), a few seconds faster than the bzImage.
extract_vmlinux() {
	local img=$1 out=$2 off
	for off in $(LC_ALL=C grep -aobP '\xfd7zXZ\x00' "$img" | cut -d: -f1); do
		tail -c +$((off + 1)) "$img" | xz -dc >"$out.tmp" 2>/dev/null || true
		if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
			mv "$out.tmp" "$out"
			return 0
		fi
	done
	rm -f "$out.tmp"
	return 1
}

# fetch_kernel KERNEL: prints the image to boot.
fetch_kernel() {
	local k=$1
	if [ -f "$k" ]; then
		echo "$k"
		return
	fi
	local dir=$cache/kernels/$k
	if [ ! -f "$dir/boot-image" ]; then
		mkdir -p "$cache/debs" "$dir"
		local deb
		deb=$(ls "$cache/debs/${k}_"*.deb 2>/dev/null | tail -1 || true)
		if [ -z "$deb" ]; then
			log "apt-get download $k"
			local sandbox=()
			[ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
			if ! (cd "$cache/debs" && apt-get download "${sandbox[@]}" -qq "$k" >&2); then
				[ "$(id -u)" = 0 ] && apt-get update -qq >&2
				(cd "$cache/debs" && apt-get download "${sandbox[@]}" -qq "$k" >&2) || die "cannot download $k"
			fi
			deb=$(ls "$cache/debs/${k}_"*.deb | tail -1)
		fi
		rm -rf "$dir/root"
		dpkg-deb -x "$deb" "$dir/root"
		local vmlinuz
		vmlinuz=$(ls "$dir"/root/boot/vmlinuz-* | head -1)
		if extract_vmlinux "$vmlinuz" "$dir/vmlinux"; then
			echo vmlinux >"$dir/boot-image"
		else
			log "no xz-compressed ELF in $vmlinuz: booting the bzImage"
			echo "${vmlinuz#"$dir"/}" >"$dir/boot-image"
		fi
		# Only the image (and its config, for reference) are needed.
		mv "$dir"/root/boot/config-* "$dir/" 2>/dev/null || true
		if [ "$(cat "$dir/boot-image")" = vmlinux ]; then rm -rf "$dir/root"; fi
	fi
	echo "$dir/$(cat "$dir/boot-image")"
}

# ---- the guest's root ----

root=
# add PATH...: copies each file into $root at the same place, following
# symlinks (each link is copied as a link, and what it points to too).
add() {
	local p dir q t
	for p in "$@"; do
		dir=$(realpath "$(dirname "$p")")
		q=$dir/$(basename "$p")
		if [ -e "$root$q" ] || [ -L "$root$q" ]; then continue; fi
		mkdir -p "$root$dir"
		if [ -L "$q" ]; then
			cp -P "$q" "$root$q"
			t=$(readlink "$q")
			case $t in /*) add "$t" ;; *) add "$dir/$t" ;; esac
		elif [ -d "$q" ]; then
			mkdir -p "$root$q"
		else
			cp --preserve=mode "$q" "$root$q" # setuid bits too (su)
		fi
	done
}

# add_elf PATH...: the files and the shared libraries they load.
add_elf() {
	local p lib
	for p in "$@"; do
		add "$p"
		for lib in $(ldd "$(realpath "$p")" 2>/dev/null | grep -o '/[^ ]*' || true); do
			add "$lib"
		done
	done
}

build_root() {
	local build=$1 p t cmd path n
	root=$build/root
	rm -rf "$build"
	mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,root,tmp,proc,sys,dev,run,kt/bin,src}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	# the rest of a Debian system's directories, empty
	mkdir -p "$root"/{mnt,opt,srv,home,media,usr/local/{sbin,lib,share,include,etc,src}} \
		"$root"/var/{log,lib,cache,spool,mail,opt,backups,local,tmp}
	ln -s ../run "$root/var/run"
	chmod 1777 "$root/var/tmp"
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	if [ "$(id -u)" = 0 ]; then
		mknod -m 600 "$root/dev/console" c 5 1
		mknod -m 666 "$root/dev/null" c 1 3
	fi

	log "building /init and the test binaries"
	(cd "$repo" && go build -trimpath -ldflags='-s -w' -o "$root/init" ./test/kernels/init)
	ln -s /init "$root/usr/local/bin/go"

	local pkgs=("${base_pkgs[@]}")
	# any other package whose tests use internal/testenv
	while read -r p; do
		if [[ " ${pkgs[*]} " != *" $p "* ]]; then pkgs+=("$p"); fi
	done < <(cd "$repo" && go list -e -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... 2>/dev/null |
		awk '/internal\/testenv/ {print $1}' | sed "s|^$(cd "$repo" && go list -m)/||" | grep -v '^internal/testenv$')
	if [ -n "${VIGIL_KT_PKGS:-}" ]; then
		local keep=() s
		for p in "${pkgs[@]}"; do
			for s in ${VIGIL_KT_PKGS//,/ }; do
				if [[ $p == "$s" || $p == */"$s" ]]; then
					keep+=("$p")
					break
				fi
			done
		done
		pkgs=("${keep[@]}")
		[ ${#pkgs[@]} -gt 0 ] || die "VIGIL_KT_PKGS=$VIGIL_KT_PKGS matches no test package"
	fi
	: >"$root/kt/manifest"
	expected=0
	for p in "${pkgs[@]}"; do
		n=${p//\//_}
		(cd "$repo" && go test -c -ldflags='-s -w' -o "$root/kt/bin/$n.test" "./$p")
		if [ ! -f "$root/kt/bin/$n.test" ]; then
			log "$p has no tests: left out"
			continue
		fi
		mkdir -p "$root/src/$p"
		if [ -d "$repo/$p/testdata" ]; then
			cp -a "$repo/$p/testdata" "$root/src/$p/"
		fi
		# Programs the tests `go build` at run time (testdata/<prog>, or the
		# package itself for a command), built here: the guest's go copies
		# <dir>/prebuilt.
		for t in "$repo/$p" "$repo/$p"/testdata/*/; do
			t=${t%/}
			if grep -qs '^package main$' "$t"/*.go; then
				(cd "$repo" && go build -ldflags='-s -w' -o "$root/src/${t#"$repo"/}/prebuilt" "./${t#"$repo"/}")
			fi
		done
		printf '%s\t/kt/bin/%s.test\t/src/%s\n' "$p" "$n" "$p" >>"$root/kt/manifest"
		expected=$((expected + 1))
	done

	# The guides the tests run (cmd/vigil's TestRuleWritingExamples reads
	# ../../docs from its package directory, and runs commands from /src).
	cp -a "$repo/docs" "$root/src/"

	log "copying the programs the tests run"
	for t in "${guest_tools[@]}"; do
		cmd=${t%%:*}
		if path=$(PATH=/usr/bin:/usr/sbin:/bin:/sbin type -P "$cmd"); then
			add_elf "$path"
		else
			log "warning: $cmd not found: tests that run it fail or skip in the guest"
		fi
	done
	# all of coreutils: scripts in tests use whichever they like
	if dpkg -L coreutils >/dev/null 2>&1; then
		for p in $(dpkg -L coreutils | grep -E '^/(usr/)?s?bin/'); do
			if [ -f "$p" ]; then add_elf "$p"; fi
		done
	fi
	# PAM, for su: this machine's configuration and modules (and git's templates).
	local libpam
	libpam=$(ldd /usr/bin/su 2>/dev/null | awk '/libpam\.so/ {print $3}')
	if [ -n "$libpam" ]; then
		for p in "$(dirname "$(realpath "$libpam")")"/security/*.so; do add_elf "$p"; done
		for p in /etc/pam.d /etc/security /usr/share/git-core/templates; do
			if [ -d "$p" ]; then mkdir -p "$root$p" && cp -a "$p/." "$root$p/"; fi
		done
	fi
	# apt-get needs a dpkg database and dpkg's tables even for --version.
	if [ -e "$root/usr/bin/apt-get" ]; then
		mkdir -p "$root/etc/apt/apt.conf.d" "$root/var/lib/dpkg"
		: >"$root/var/lib/dpkg/status"
		if [ -d /usr/share/dpkg ]; then mkdir -p "$root/usr/share" && cp -a /usr/share/dpkg "$root/usr/share/"; fi
	fi
	for p in /etc/os-release /etc/login.defs /etc/shells /etc/environment; do
		if [ -e "$p" ]; then add "$p"; fi
	done
	# Python's standard library: the part Debian's python3-minimal ships.
	if [ -x /usr/bin/python3 ]; then
		local py stdlib owner
		py=$(basename "$(realpath /usr/bin/python3)")
		stdlib=/usr/lib/$py
		if owner=$(dpkg -S "$stdlib/os.py" 2>/dev/null | cut -d: -f1) && [ -n "$owner" ]; then
			while read -r p; do
				if [[ $p == "$stdlib"/* ]] && { [ -f "$p" ] || [ -L "$p" ]; }; then add "$p"; fi
			done < <(dpkg -L "$owner")
		else
			tar -C / --exclude=test --exclude=tests --exclude=__pycache__ --exclude=site-packages \
				--exclude=dist-packages -cf - "${stdlib#/}" | tar -C "$root" -xf -
		fi
		for p in $(find "$root$stdlib" -name '*.so'); do add_elf "${p#"$root"}"; done
	fi

	# /etc as the tests expect it.
	echo vigil-guest >"$root/etc/hostname"
	echo 5c1e0e7a1d2b4c3f8e9a0b1c2d3e4f50 >"$root/etc/machine-id"
	printf '127.0.0.1\tlocalhost vigil-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
	chmod 640 "$root/etc/shadow"
	printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
	# No DNS server in the guest: queries to 127.0.0.1:53 go unanswered.
	echo 'nameserver 127.0.0.1' >"$root/etc/resolv.conf"
	ln -s ../proc/self/mounts "$root/etc/mtab"

	log "initramfs"
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet) >"$build/initrd.cpio"
	log "initramfs: $(du -h "$build/initrd.cpio" | cut -f1), packages: $(cut -f1 "$root/kt/manifest" | tr '\n' ' ')"
}

# ---- run ----

# boot KERNEL-IMAGE LOG EXPECT: 0 if every package passed.
boot() {
	local image=$1 logf=$2 expect=$3 append status
	append="console=ttyS0 lsm=lockdown,capability,landlock,yama,bpf panic=-1 quiet vigil.timeout=$test_timeout"
	if [ -n "${VIGIL_KT_RUN:-}" ]; then append+=" vigil.run=$VIGIL_KT_RUN"; fi
	if [ -n "$expect" ]; then append+=" vigil.expect=$expect"; fi
	set +e
	timeout -k 10 "$host_timeout" qemu-system-x86_64 -accel tcg -m 2048 -smp 1 -nographic -no-reboot \
		-kernel "$image" -initrd "$cache/build/initrd.cpio" -append "$append" </dev/null 2>&1 |
		sed -u 's/\r$//' | tee "$logf"
	status=${PIPESTATUS[0]}
	set -e
	if [ "$status" = 124 ] || [ "$status" = 137 ]; then
		echo "VIGIL-KT HOST: qemu killed after ${host_timeout}s (VIGIL_KT_TIMEOUT)" | tee -a "$logf"
		return 1
	fi
	[ "$status" = 0 ] || { echo "VIGIL-KT HOST: qemu exited with $status" | tee -a "$logf"; return 1; }
	local done_line
	done_line=$(grep -a '^VIGIL-KT DONE ' "$logf" | tail -1)
	[ -n "$done_line" ] || { echo "VIGIL-KT HOST: the guest never finished (no DONE line): crash or panic, see above" | tee -a "$logf"; return 1; }
	[[ $done_line == *" packages=$expected pass=$expected fail=0" ]] ||
		{ echo "VIGIL-KT HOST: not every package passed ($done_line; $expected expected)" | tee -a "$logf"; return 1; }
}

main() {
	ensure_host_tools
	local kernels=("$@")
	[ ${#kernels[@]} -gt 0 ] || kernels=("$(default_kernel)")

	local t0=$SECONDS
	build_root "$cache/build"
	local build_s=$((SECONDS - t0))

	mkdir -p "$cache/logs"
	local k image name logf t1 expect failed=0 summary=()
	for k in "${kernels[@]}"; do
		image=$(fetch_kernel "$k")
		# Debian's kernels have the BPF LSM (booted with lsm=...,bpf) and BPF
		# trampolines; what an image given by path has is not known.
		expect=
		if [ ! -f "$k" ]; then expect=bpf_lsm,fentry; fi
		expect=${VIGIL_KT_EXPECT-$expect}
		name=$(basename "$k")
		logf=$cache/logs/$name.log
		log "booting $name ($image); console log: $logf"
		t1=$SECONDS
		if boot "$image" "$logf" "$expect"; then
			summary+=("PASS $name $((SECONDS - t1))s")
		else
			summary+=("FAIL $name $((SECONDS - t1))s")
			failed=1
		fi
		summary+=("$(grep -a -e '^VIGIL-KT RESULT' -e '^VIGIL-KT   ' -e '^VIGIL-KT HOST' "$logf" | sed 's/^/    /')")
	done

	echo
	echo "==== test-kernels: build ${build_s}s, total $((SECONDS - t0))s"
	printf '%s\n' "${summary[@]}"
	return $failed
}

main "$@"

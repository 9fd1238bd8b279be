#!/usr/bin/perl
# What a container may do to its host: run the same under `docker run` and
# `strata run` and compare. Perl because Debian's minimal image has it and it can
# make raw system calls. One line per probe: NAME allowed|denied ERRNO|value.
# x86_64 system call numbers.
use strict;
use warnings;
use POSIX qw(:sys_wait_h);

$| = 1;

sub errname {
    my $code = shift;
    local $! = $code;
    for my $name (keys %!) { return $name if $!{$name}; }
    return "E$code";
}

sub report {
    my ($name, $ok, $detail) = @_;
    print "$name ", ($ok ? "allowed" : "denied"), " ", ($detail // ""), "\n";
}

sub sys_probe {    # a raw system call: allowed when it returns >= 0
    my ($name, $number, @args) = @_;
    $! = 0;
    my $rc = syscall($number, @args);
    report($name, $rc >= 0, $rc >= 0 ? "" : errname($! + 0));
    return $rc;
}

sub in_child {    # run a probe in a child so a namespace it makes dies with it
    my ($name, $code) = @_;
    my $pid = fork();
    if ($pid == 0) {
        my $err = $code->();
        POSIX::_exit($err);
    }
    waitpid($pid, 0);
    my $err = $? >> 8;
    report($name, $err == 0, $err ? errname($err) : "");
}

sub status_field {
    my $key = shift;
    open(my $fh, "<", "/proc/self/status") or return "?";
    while (<$fh>) { return $1 if /^\Q$key\E:\s*(\S+)/; }
    return "?";
}

sub try_write {    # open for writing; write the given bytes when defined
    my ($name, $path, $bytes) = @_;
    if (open(my $fh, ">>", $path)) {
        my $ok = 1;
        if (defined $bytes) { $ok = print $fh $bytes; $ok = close($fh) && $ok; }
        report($name, $ok, $ok ? "" : errname($! + 0));
    } else {
        report($name, 0, errname($! + 0));
    }
}

sub try_read {    # allowed = the file gave bytes; masked files read empty
    my ($name, $path) = @_;
    if (open(my $fh, "<", $path)) {
        my $n = sysread($fh, my $buf, 64);
        if (!defined $n) { report($name, 0, errname($! + 0)); }
        else { report($name, $n > 0, $n > 0 ? "" : "empty"); }
    } else {
        report($name, 0, errname($! + 0));
    }
}

my ($MS_REMOUNT, $MS_BIND) = (32, 4096);

print "capeff value ", status_field("CapEff"), "\n";
print "seccomp value ", status_field("Seccomp"), "\n";

# kernel settings through /proc/sys (core_pattern runs a program as root on a core dump)
my $pattern = "";
if (open(my $fh, "<", "/proc/sys/kernel/core_pattern")) { local $/; $pattern = <$fh> // ""; chomp $pattern; }
if (open(my $fh, ">", "/proc/sys/kernel/core_pattern")) {
    my $ok = print $fh $pattern;
    $ok = close($fh) && $ok;
    report("core_pattern", $ok, $ok ? "" : errname($! + 0));
} else {
    report("core_pattern", 0, errname($! + 0));
}

sys_probe("remount_sys", 165, "none", "/sys", 0, $MS_REMOUNT | $MS_BIND, 0);
try_write("sys_power_state", "/sys/power/state", undef);
sys_probe("remount_cgroup", 165, "none", "/sys/fs/cgroup/pids", 0, $MS_REMOUNT | $MS_BIND, 0);

# a read-only volume stays read-only
sys_probe("remount_ro_volume", 165, "none", "/ro", 0, $MS_REMOUNT | $MS_BIND, 0);
try_write("write_ro_volume", "/ro/f", "x");

# the kernel keyring: the caller's key by serial, and keyctl at all
my $serial = $ENV{PROBE_KEY} // 0;
my $buf = "\0" x 64;
sys_probe("keyctl_read_host_key", 250, 11, $serial + 0, $buf, 64);
sys_probe("keyctl", 250, 0, -3, 0);

# new namespaces of each kind
my %ns = (user => 0x10000000, mnt => 0x00020000, uts => 0x04000000, ipc => 0x08000000,
          net => 0x40000000, pid => 0x20000000, cgroup => 0x02000000);
for my $kind (sort keys %ns) {
    in_child("unshare_$kind", sub { my $rc = syscall(272, $ns{$kind}); return $rc < 0 ? ($! + 0) : 0; });
}

# ptrace of another process of the container
my $target = fork();
if ($target == 0) { sleep 30; POSIX::_exit(0); }
sys_probe("ptrace_attach", 101, 16, $target, 0, 0);
kill 9, $target;
waitpid($target, 0);

# raw sockets, the clock, device nodes
if (socket(my $sock, 2, 3, 1)) { report("raw_socket", 1, ""); } else { report("raw_socket", 0, errname($! + 0)); }
my $tv = pack("q q", time(), 0);
sys_probe("settimeofday", 164, $tv, 0);
my $node = "/tmp/probe-node-$$";
$! = 0;
if (syscall(133, $node, 0020666, (10 << 8) | 183) >= 0) {    # c 10:183, hwrng
    try_read("mknod_open", $node);
    unlink $node;
} else {
    report("mknod_open", 0, "mknod:" . errname($! + 0));
}
# nodes the image ships (hwrng gives bytes when it opens); a store that cannot make
# device nodes (rootless) keeps an empty file in their place, which opens nothing
for my $name ("hwrng", "kvm", "loop0", "tty0") {
    my $path = "/nodes/$name";
    if (!-c $path && !-b $path) { report("image_node_$name", 0, "not-a-device"); next; }
    if ($name eq "hwrng") { try_read("image_node_$name", $path); next; }
    if (open(my $fh, "<", $path)) { report("image_node_$name", 1, ""); }
    else { report("image_node_$name", 0, errname($! + 0)); }
}

# kernel memory and internals
for my $path ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") {
    (my $name = $path) =~ s{^/proc/}{read_};
    try_read($name, $path);
}
print "done value 1\n";

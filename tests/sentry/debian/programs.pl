# Perl: hashes, regular expressions, formats, a forked child over a pipe, a command's output.
use strict;
use warnings;
use POSIX qw(floor);
use Digest::MD5 qw(md5_hex);

my %len = map { $_ => length $_ } qw(alpha beta gamma);
print join(",", map { "$_=$len{$_}" } sort keys %len), "\n";
(my $title = "the quick brown fox") =~ s/(\w+)/\u$1/g;
print "$title\n";
printf "%.3f %05d %x %s\n", 3.14159, 42, 255, floor(2.7);
print "md5 ", md5_hex("ringfence"), "\n";
pipe(my $r, my $w) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    close $r;
    print $w "written by the child\n";
    close $w;
    exit 7;
}
close $w;
my $line = <$r>;
waitpid($pid, 0);
print "child said: $line";
print "child exit ", $? >> 8, "\n";
open(my $cmd, '-|', 'seq', '3') or die "seq: $!";
my @n = <$cmd>;
close $cmd;
chomp @n;
print "from seq: @n\n";
open(my $f, '>', '/tmp/perl.txt') or die;
print $f "$_\n" for reverse 1 .. 5;
close $f;
open($f, '<', '/tmp/perl.txt') or die;
my @sorted = sort { $a <=> $b } map { chomp; $_ } <$f>;
print "sorted @sorted\n";

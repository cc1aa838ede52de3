#!/usr/bin/perl
# Evaluates SpamAssassin's own compiled meta rules over given rule hits, the
# way Check.pm's do_meta_tests does at the end of a scan, and prints the metas
# that hit.  Used by engine_meta_test to hold regexd's meta evaluator to
# SpamAssassin 4.0.1 itself.
#
# Usage: sa_meta_eval.pl RULES_DIR PRE_DIR < hitsets
#   RULES_DIR  SpamAssassin's rules (/usr/share/spamassassin)
#   PRE_DIR    where the .pre files that load plugins live (/etc/spamassassin);
#              only its *.pre files are used, copied to a private site dir.
# Input: one hit set a line, "NAME=VALUE NAME=VALUE ..." (rules that hit and
# their hit values; every other test did not hit).
# Output: one line per input line, "META=VALUE ..." sorted by name.
use strict;
use warnings;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Mail::SpamAssassin;

my ($dir, $pre_dir) = @ARGV;
die "usage: $0 RULES_DIR PRE_DIR\n" unless defined $pre_dir;
my $site = tempdir(CLEANUP => 1);
copy($_, $site) or die "$_: $!\n" for glob("$pre_dir/*.pre");
my $sa = Mail::SpamAssassin->new({
  rules_filename => $dir, site_rules_filename => $site, userprefs_filename => '/nonexistent',
  local_tests_only => 1, dont_copy_prefs => 1, home_dir_for_helpers => $site,
});
$sa->init(0);
my $conf = $sa->{conf};
$conf->set_score_set(0);
my $mt = $conf->{meta_tests};
my $md = $conf->{meta_dependencies};
# The compiled subs read $_[0]->{main}->{local_tests_only} and $_[1]->{NAME}.
my $pms = { main => { local_tests_only => 1 } };

$| = 1;
while (my $line = <STDIN>) {
  chomp $line;
  my %h;
  for my $pair (split ' ', $line) {
    my ($name, $value) = split /=/, $pair, 2;
    $h{$name} = $value unless exists $mt->{$name};
  }
  # Check.pm: only metas with a score are pending; at the finish every
  # dependency that is not a meta and did not run counts as 0; a meta runs
  # once all its dependencies are ready, possibly after other metas.
  my %pending = map { $_ => 1 } grep { $conf->{scores}->{$_} } keys %$mt;
  for my $m (keys %pending) {
    for my $dep (@{ $md->{$m} || [] }) {
      $h{$dep} ||= 0 unless exists $mt->{$dep};
    }
  }
  my $progress = 1;
  while ($progress) {
    $progress = 0;
    META: for my $m (sort keys %pending) {
      for my $dep (@{ $md->{$m} || [] }) {
        next META unless exists $h{$dep};
      }
      my $result = $mt->{$m}->($pms, \%h);
      if ($result) {
        # PerMsgStatus::got_hit: a value that is not above 0 counts as 1.
        $h{$m} = (!$result || $result <= 0) ? 1 : $result;
      } else {
        $h{$m} ||= 0;
      }
      delete $pending{$m};
      $progress = 1;
    }
  }
  print join(' ', map { "$_=" . ($h{$_} + 0) } grep { exists $mt->{$_} && $h{$_} } sort keys %h), "\n";
}

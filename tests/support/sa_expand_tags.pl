#!/usr/bin/perl
# Prints "RULE<TAB>PATTERN" for every regex rule SpamAssassin itself builds
# from the .cf files in DIR, after its ReplaceTags plugin has expanded the
# tags, with the "(?aa)(?i)"-style prefixes of its compiled form removed.
# Used by engine_parse_test to hold regexd's importer to SpamAssassin's own
# expansion.  Usage: sa_expand_tags.pl DIR
use strict;
use warnings;
use File::Temp qw(tempdir);
use Mail::SpamAssassin;
use Mail::SpamAssassin::Util qw(qr_to_string);

my $dir = shift or die "usage: $0 DIR\n";
# Only the plugin under test is loaded, from a private site directory, so
# the machine's /etc/spamassassin plays no part.
my $site = tempdir(CLEANUP => 1);
open(my $fh, '>', "$site/init.pre") or die "$site/init.pre: $!\n";
print $fh "loadplugin Mail::SpamAssassin::Plugin::ReplaceTags\n";
close $fh;
my $sa = Mail::SpamAssassin->new({
  rules_filename => $dir, site_rules_filename => $site, userprefs_filename => '/nonexistent',
  local_tests_only => 1, dont_copy_prefs => 1,
});
$sa->init(0);
my $qrs = $sa->{conf}->{test_qrs};
for my $rule (sort keys %$qrs) {
  my $re = qr_to_string($qrs->{$rule});
  next unless defined $re;
  $re =~ s/^(?:\(\?\^?[a-z]*\))+//;
  print "$rule\t$re\n";
}

#!/usr/bin/perl
# SpamAssassin itself (Mail::SpamAssassin, Debian's 4.0.1) as the referee of regexd's fidelity
# (issue 12; driven by bench/sa_referee.sh).
#
#   sa_referee.pl [--rules DIR] --describe
#       One JSON object per rule of SpamAssassin's parsed configuration, as it stands with nothing
#       switched off: {"name","type" (header|body|rawbody|full|uri|meta|empty),"eval" (0/1),
#       "header" (header tests: the header name with its :modifiers),"exists","neg","unset" (header
#       tests: exists:, !~, [if-unset:]),"score" (score set 0: local tests, no Bayes),"tflags",
#       "deps" (metas: the rule names in the expression)}.
#   sa_referee.pl [--rules DIR] [--off FILE] [--keep] MESSAGE...
#       Checks each message with SpamAssassin and prints one JSON line per message:
#       {"file", "hits": [every rule that hit: public rules, metas and __ sub-rules], "ms"}.
#       "hits" is get_names_of_tests_hit() plus get_names_of_subtests_hit(), deduplicated and sorted;
#       "ms" is the time of check() alone (parse and finish not included).
#       --off FILE: rule names, one per line, that are switched off with `score NAME 0` in a .cf read
#       after the rules (SpamAssassin then neither runs them nor lets a meta see them as anything
#       but 0; see bench/sa_referee.sh).
#
# SpamAssassin runs as "SpamAssassin with local tests only": its own rules from DIR (default
# /usr/share/spamassassin), the plugins its stock .pre files (v310.pre ... v401.pre, as shipped by
# SpamAssassin 4.0.1 and Debian) load, which is also what regexd's importer assumes for `ifplugin`
# (SpamAssassinOptions::default_spamassassin_plugins); no /etc/spamassassin (no local.cf, no site
# rules), no user preferences, no Bayes (use_bayes 0), no AWL/TxRep (not loaded), no auto-learning,
# no DNS or other network tests (local_tests_only, dns_available no), and a private temporary home
# and state directory.
use strict;
use warnings;
use File::Temp qw(tempdir);
use Getopt::Long;
use JSON::PP;
use Time::HiRes qw(time);
use Mail::SpamAssassin;

my ($rules, $off, $describe, $keep) = ('/usr/share/spamassassin', undef, 0, 0);
GetOptions('rules=s' => \$rules, 'off=s' => \$off, 'describe' => \$describe, 'keep' => \$keep)
  or die "usage: $0 [--rules DIR] (--describe | [--off FILE] MESSAGE...)\n";
die "no messages given\n" if !$describe && !@ARGV;

# The plugins SpamAssassin 4.0.1's stock .pre files load (every uncommented loadplugin line of
# v310.pre ... v401.pre). Network plugins and Bayes are loaded so that their rules and `ifplugin`
# blocks are defined as in a stock installation; local_tests_only, use_bayes 0 and
# bayes_auto_learn 0 keep them from running.
my @plugins = qw(
  URIDNSBL SPF Pyzor Razor2 SpamCop AutoLearnThreshold WelcomeListSubject MIMEHeader ReplaceTags
  DKIM Check HTTPSMismatch URIDetail Bayes BodyEval DNSEval HTMLEval HeaderEval MIMEEval RelayEval
  URIEval WLBLEval VBounce ImageInfo FreeMail AskDNS HashBL DMARC
);

my $home = tempdir('sa-referee.XXXXXX', TMPDIR => 1, CLEANUP => !$keep);
print STDERR "sa_referee: home $home\n" if $keep;
my $site = "$home/site";
mkdir $site or die "$site: $!\n";
mkdir "$home/state" or die "$home/state: $!\n";
open(my $pre, '>', "$site/init.pre") or die "$site/init.pre: $!\n";
print $pre "loadplugin Mail::SpamAssassin::Plugin::$_\n" for @plugins;
close $pre;
open(my $cf, '>', "$site/zz_referee.cf") or die "$site/zz_referee.cf: $!\n";
print $cf "use_bayes 0\nbayes_auto_learn 0\ndns_available no\nskip_rbl_checks 1\n";
if (defined $off) {
  open(my $in, '<', $off) or die "$off: $!\n";
  my $n = 0;
  while (my $name = <$in>) {
    $name =~ s/\s+$//;
    next if $name eq '' || $name =~ /^#/;
    die "$off: not a rule name: $name\n" unless $name =~ /^\w+$/;
    print $cf "score $name 0\n";
    $n++;
  }
  print STDERR "sa_referee: $n rules switched off (score 0)\n";
}
close $cf;

my $sa = Mail::SpamAssassin->new({
  rules_filename => $rules, site_rules_filename => $site,
  userprefs_filename => "$home/user_prefs", dont_copy_prefs => 1,
  userstate_dir => "$home/state", home_dir_for_helpers => $home,
  local_tests_only => 1,
});
$sa->init(0);
my $conf = $sa->{conf};
my $json = JSON::PP->new->canonical;

if ($describe) {
  my %type = %Mail::SpamAssassin::Conf::TYPE_AS_STRING;
  for my $name (sort keys %{$conf->{test_types}}) {
    my $t = $conf->{test_types}->{$name};
    my %r = (name => $name, type => $type{$t} // "$t", eval => ($t & 1) ? 1 : 0,
             score => 0 + ($conf->{scores}->{$name} // 0), tflags => $conf->{tflags}->{$name} // '');
    if (defined(my $h = $conf->{test_opt_header}->{$name})) {
      $r{header} = $h;
      $r{exists} = 1 if $conf->{test_opt_exists}->{$name};
      $r{neg} = 1 if $conf->{test_opt_neg}->{$name};
      $r{unset} = $conf->{test_opt_unset}->{$name} if defined $conf->{test_opt_unset}->{$name};
    }
    $r{deps} = $conf->{meta_dependencies}->{$name} || [] if $type{$t} eq 'meta';
    print $json->encode(\%r), "\n";
  }
  exit 0;
}

$| = 1;
for my $file (@ARGV) {
  open(my $fh, '<:raw', $file) or die "$file: $!\n";
  my $text = do { local $/; <$fh> };
  close $fh;
  my $msg = $sa->parse($text);
  my $t0 = time;
  my $pms = $sa->check($msg);
  my $ms = (time - $t0) * 1000;
  my %hits = map { $_ => 1 } grep { $_ ne '' }
    split(/,/, $pms->get_names_of_tests_hit()), split(/,/, $pms->get_names_of_subtests_hit());
  print $json->encode({file => $file, hits => [sort keys %hits], ms => 0 + sprintf('%.1f', $ms)}), "\n";
  $pms->finish;
  $msg->finish;
}
$sa->finish;

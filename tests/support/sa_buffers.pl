#!/usr/bin/perl
# sa_buffers.pl OUTDIR FILE...: what SpamAssassin 4.0 itself gives each rule type of each message,
# for tests/integration/sa_buffers.sh. Writes OUTDIR/<message>.sa, one "class<TAB>buffer" line per
# buffer (\\ \n \r \t escaped): body (get_rendered_body_text_array), rawbody
# (get_decoded_body_text_array), url (get_uri_list, sorted), header:REQ (get() as Plugin/Check.pm
# joins it, or ABSENT) for each REQ in $ENV{SA_BUFFERS_HEADERS}.
use strict;
use warnings;
use Mail::SpamAssassin;

my $out = shift or die "usage: $0 OUTDIR FILE...\n";
my $home = $ENV{SA_BUFFERS_HOME} || "$out/.sa-home";
mkdir $home;
my $sa = Mail::SpamAssassin->new({local_tests_only => 1, dont_copy_prefs => 1,
  userprefs_filename => '/dev/null', home_dir_for_helpers => $home, debug => 0});
$sa->init(1);
my @headers = split ' ', ($ENV{SA_BUFFERS_HEADERS} || '');

sub esc {
  my $s = shift;
  utf8::encode($s) if utf8::is_utf8($s);
  $s =~ s/\\/\\\\/g; $s =~ s/\n/\\n/g; $s =~ s/\r/\\r/g; $s =~ s/\t/\\t/g;
  return $s;
}

for my $file (@ARGV) {
  open my $fh, '<', $file or die "$file: $!\n";
  my $text = do { local $/; <$fh> };
  close $fh;
  my $msg = $sa->parse($text, 1);
  my $pms = Mail::SpamAssassin::PerMsgStatus->new($sa, $msg);
  $msg->extract_message_metadata($pms);
  (my $base = $file) =~ s{.*/([^/]+)/([^/]+)$}{$1_$2};
  open my $o, '>', "$out/$base.sa" or die "$out/$base.sa: $!\n";
  print $o "body\t", esc($_), "\n" for @{$msg->get_rendered_body_text_array()};
  print $o "rawbody\t", esc($_), "\n" for @{$msg->get_decoded_body_text_array()};
  my %uris = map { esc($_) => 1 } $pms->get_uri_list();
  print $o "url\t$_\n" for sort keys %uris;
  for my $req (@headers) {
    my @values = $pms->get($req);
    print $o "header:$req\t",
      (@values ? esc(join($values[0] =~ /\n\z/ ? '' : "\n", @values)) : 'ABSENT'), "\n";
  }
  close $o;
  $pms->finish();
  $msg->finish();
}

use std::time::Duration;

use super::*;
use crate::probe::bursts::*;
use crate::probe::hops::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// `count` events from `start`, `step` apart.
fn paced(start: Duration, step: Duration, count: u32) -> Vec<Duration> {
    (0..count).map(|i| start + step * i).collect()
}

fn facts<'a>(arrivals: &'a [Duration], end: &'a BodyEnd) -> Facts<'a> {
    Facts {
        content_type: Some("text/event-stream"),
        content_encoding: None,
        content_length: None,
        arrivals,
        text_arrivals: &[],
        body_bytes: 100 * arrivals.len() as u64,
        dialect: Dialect::OpenAiChat,
        end_marker: true,
        end,
        decode_error: None,
    }
}

#[test]
fn one_or_two_events_are_never_judged_buffered() {
    for n in 0..MIN_EVENTS {
        let arrivals = vec![ms(3000); n];
        assert_eq!(buffering(&arrivals), Buffering::TooFew(n));
    }
    let two = [ms(3000), ms(3000)];
    let v = judge(&facts(&two, &BodyEnd::Finished));
    assert_eq!(v.kind(), Kind::Streamed);
    assert!(v.evidence().contains("too few"), "{}", v.evidence());
}

#[test]
fn protocol_events_written_together_are_not_a_burst() {
    // Role chunk, a pause, then the only token with finish, usage and [DONE] right behind it.
    let arrivals = [ms(20), ms(600), ms(600), ms(600), ms(600)];
    let text = [ms(600)];
    let mut f = facts(&arrivals, &BodyEnd::Finished);
    assert_eq!(judge(&f).kind(), Kind::Buffered);
    f.text_arrivals = &text;
    let v = judge(&f);
    assert_eq!(v.kind(), Kind::Streamed);
    assert!(
        v.evidence().contains("too few text events (1)"),
        "{}",
        v.evidence()
    );
    // Text events released at once are still a buffer.
    let text = [ms(900); 6];
    let arrivals = [ms(900); 9];
    let mut f = facts(&arrivals, &BodyEnd::Finished);
    f.text_arrivals = &text;
    let v = judge(&f);
    assert!(
        v.evidence().starts_with("6 of 6 text events arrived"),
        "{}",
        v.evidence()
    );
}

#[test]
fn a_paced_stream_is_streamed() {
    let arrivals = paced(ms(300), ms(80), 50);
    assert_eq!(
        buffering(&arrivals),
        Buffering::Spread { held: 0, total: 50 }
    );
    let v = judge(&facts(&arrivals, &BodyEnd::Finished));
    assert_eq!(v.kind(), Kind::Streamed);
    assert_eq!(v.kind().exit_code(), 0);
    assert!(v.evidence().contains("50 events"), "{}", v.evidence());
}

#[test]
fn a_body_released_at_once_after_a_silence_is_buffered() {
    let arrivals = vec![ms(2000); 40];
    let Buffering::Held {
        releases,
        held,
        total,
    } = buffering(&arrivals)
    else {
        panic!("not held");
    };
    assert_eq!((held, total, releases.len()), (40, 40, 1));
    assert_eq!(releases[0].silence, ms(2000));
    let v = judge(&facts(&arrivals, &BodyEnd::Finished));
    assert_eq!(v.kind(), Kind::Buffered);
    assert_eq!(v.kind().exit_code(), 10);
    assert!(
        v.evidence()
            .contains("40 of 40 events arrived within 0.0 ms at 2.00 s"),
        "{}",
        v.evidence()
    );
}

#[test]
fn an_early_role_chunk_does_not_hide_the_buffer() {
    let mut arrivals = vec![ms(50)];
    arrivals.extend(paced(ms(2000), us(5), 40));
    assert!(matches!(
        buffering(&arrivals),
        Buffering::Held {
            held: 40,
            total: 41,
            ..
        }
    ));
}

#[test]
fn a_cold_model_that_then_streams_is_not_buffered() {
    // 30 s loading, then the role chunk and first token together, then 30 ms a token.
    let mut arrivals = vec![ms(30_000), ms(30_000)];
    arrivals.extend(paced(ms(30_030), ms(30), 100));
    assert!(matches!(buffering(&arrivals), Buffering::Spread { .. }));
}

#[test]
fn a_fast_small_model_is_not_buffered() {
    let arrivals = paced(ms(300), ms(2), 200);
    assert!(matches!(buffering(&arrivals), Buffering::Spread { .. }));
}

#[test]
fn buffer_sized_blocks_are_buffered() {
    // nginx with proxy_buffering on: a block of 30 events every 1.2 s.
    let mut arrivals = Vec::new();
    for block in 1..=8 {
        arrivals.extend(paced(ms(1200 * block), us(10), 30));
    }
    let Buffering::Held { releases, held, .. } = buffering(&arrivals) else {
        panic!("not held");
    };
    assert_eq!((releases.len(), held), (8, 240));
    let v = judge(&facts(&arrivals, &BodyEnd::Finished));
    assert!(v.evidence().contains("in 8 bursts"), "{}", v.evidence());
}

#[test]
fn a_release_crossing_a_wan_in_round_trips_is_one_release() {
    let mut arrivals = Vec::new();
    for flight in 0..3 {
        arrivals.extend(paced(ms(10_000 + 40 * flight), us(20), 100));
    }
    let Buffering::Held { releases, held, .. } = buffering(&arrivals) else {
        panic!("not held");
    };
    assert_eq!((releases.len(), held), (1, 300));
}

#[test]
fn a_stream_faster_than_the_minimal_silence_is_not_judged() {
    let arrivals = paced(ms(5), ms(1), 10);
    assert_eq!(buffering(&arrivals), Buffering::TooFast(ms(14)));
    let v = judge(&facts(&arrivals, &BodyEnd::Finished));
    assert_eq!(v.kind(), Kind::Streamed);
    assert!(v.evidence().contains("too fast"), "{}", v.evidence());
}

#[test]
fn a_short_silence_is_not_a_hold() {
    // Three events at once, 90 ms after the previous ones: below MIN_SILENCE.
    let mut arrivals = paced(ms(200), ms(150), 4);
    let last = *arrivals.last().unwrap();
    arrivals.extend([last + ms(90); 3]);
    assert!(matches!(
        buffering(&arrivals),
        Buffering::Spread { held: 0, .. }
    ));
}

#[test]
fn a_json_answer_is_not_a_stream() {
    let arrivals = [ms(900)];
    let mut f = facts(&arrivals, &BodyEnd::Finished);
    f.content_type = Some("application/json");
    let v = judge(&f);
    assert_eq!(v.kind(), Kind::NotAStream);
    assert_eq!(v.kind().exit_code(), 13);
    assert!(
        v.evidence().contains("application/json"),
        "{}",
        v.evidence()
    );
    f.content_type = None;
    assert_eq!(judge(&f).kind(), Kind::NotAStream);
}

#[test]
fn an_event_stream_without_events_is_not_a_stream() {
    let mut f = facts(&[], &BodyEnd::Finished);
    f.body_bytes = 120;
    let v = judge(&f);
    assert_eq!(v.kind(), Kind::NotAStream);
    assert!(v.evidence().contains("120 bytes"), "{}", v.evidence());
}

#[test]
fn heartbeats_cut_by_the_timeout_are_incomplete() {
    let end = BodyEnd::TimedOut(ms(5000));
    let mut f = facts(&[], &end);
    (f.body_bytes, f.dialect, f.end_marker) = (42, Dialect::Unknown, false);
    let v = judge(&f);
    assert_eq!(v.kind(), Kind::Incomplete, "{v:?}");
    assert_eq!(v.findings.len(), 1);
}

#[test]
fn an_empty_stream_is_incomplete() {
    let mut f = facts(&[], &BodyEnd::Finished);
    f.body_bytes = 0;
    f.dialect = Dialect::Unknown;
    f.end_marker = false;
    assert_eq!(judge(&f).kind(), Kind::Incomplete);
}

#[test]
fn compression_comes_before_buffering_and_both_are_reported() {
    let arrivals = vec![ms(1500); 20];
    let mut f = facts(&arrivals, &BodyEnd::Finished);
    f.content_encoding = Some("gzip");
    let v = judge(&f);
    assert_eq!(v.kind(), Kind::Compressed);
    assert_eq!(v.kind().exit_code(), 11);
    let kinds: Vec<Kind> = v.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [Kind::Compressed, Kind::Buffered]);
    f.content_encoding = Some("identity");
    assert_eq!(judge(&f).kind(), Kind::Buffered);
}

#[test]
fn an_undecodable_body_says_so() {
    let mut f = facts(&[], &BodyEnd::Finished);
    f.content_encoding = Some("gzip");
    f.decode_error = Some("invalid gzip header");
    (f.body_bytes, f.dialect, f.end_marker) = (50, Dialect::Unknown, false);
    let v = judge(&f);
    assert_eq!(v.findings.len(), 1, "{v:?}");
    assert!(v.evidence().contains("invalid gzip header"));
}

#[test]
fn a_missing_end_marker_is_incomplete() {
    let arrivals = paced(ms(100), ms(50), 10);
    let mut f = facts(&arrivals, &BodyEnd::Finished);
    f.end_marker = false;
    let v = judge(&f);
    assert_eq!(v.kind(), Kind::Incomplete);
    assert_eq!(v.kind().exit_code(), 12);
    assert!(v.evidence().contains("data: [DONE]"), "{}", v.evidence());
    // A dialect without end marker ends fine without one.
    f.dialect = Dialect::Unknown;
    assert_eq!(judge(&f).kind(), Kind::Streamed);
}

#[test]
fn a_cut_stream_is_incomplete() {
    let arrivals = paced(ms(100), ms(50), 10);
    let broken = BodyEnd::Broken("connection reset".into());
    let v = judge(&facts(&arrivals, &broken));
    assert_eq!(v.kind(), Kind::Incomplete);
    assert!(v.evidence().contains("connection reset"));
    let timed_out = BodyEnd::TimedOut(ms(1000));
    let mut f = facts(&arrivals, &timed_out);
    f.end_marker = false;
    assert!(judge(&f).evidence().contains("--timeout 1.00 s"));
    // Held open after the end marker: the answer was complete.
    f.end_marker = true;
    assert_eq!(judge(&f).kind(), Kind::Streamed);
    let after = BodyEnd::StoppedAfterEndMarker;
    assert_eq!(judge(&facts(&arrivals, &after)).kind(), Kind::Streamed);
}

#[test]
fn buffering_evidence_names_a_content_length() {
    let arrivals = vec![ms(900); 5];
    let mut f = facts(&arrivals, &BodyEnd::Finished);
    f.content_length = Some("500");
    assert!(judge(&f).evidence().contains("Content-Length: 500"));
}

#[test]
fn good_stream_headers_get_no_warning() {
    let good = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
        ("Transfer-Encoding", "chunked"),
    ];
    let notes = header_notes(|name| {
        good.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    });
    assert_eq!(notes.len(), 6);
    assert!(notes.iter().all(|n| n.warning.is_none()), "{notes:?}");
}

#[test]
fn bad_stream_headers_are_warned_about() {
    let bad = [
        ("Content-Type", "text/html"),
        ("Cache-Control", "public, max-age=60"),
        ("X-Accel-Buffering", "yes"),
        ("Content-Encoding", "gzip"),
        ("Content-Length", "1234"),
    ];
    let notes = header_notes(|name| {
        bad.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    });
    let warned: Vec<&str> = notes
        .iter()
        .filter(|n| n.warning.is_some())
        .map(|n| n.name)
        .collect();
    assert_eq!(
        warned,
        [
            "Content-Type",
            "Cache-Control",
            "X-Accel-Buffering",
            "Content-Encoding",
            "Content-Length"
        ]
    );
    let missing = header_notes(|_| None);
    assert_eq!(missing.iter().filter(|n| n.warning.is_some()).count(), 3);
}

#[test]
fn compare_names_the_hop_that_loses_streaming() {
    let (a, b) = ("http://app:8000/x", "https://edge/x");
    let streamed = Side::Judged(Kind::Streamed);
    let buffered = Side::Judged(Kind::Buffered);
    let (text, lost) = compare(a, &streamed, b, &buffered);
    assert_eq!(lost.as_deref(), Some(b));
    assert!(
        text.starts_with("http://app:8000/x: streamed; https://edge/x: buffered — "),
        "{text}"
    );
    let (text, lost) = compare(a, &streamed, b, &streamed);
    assert_eq!(lost, None);
    assert!(text.contains("both stream"));
    let (text, lost) = compare(a, &buffered, b, &buffered);
    assert_eq!(lost.as_deref(), Some(a));
    assert!(text.contains("already buffered at http://app:8000/x"));
    let (_, lost) = compare(a, &streamed, b, &Side::Failed("timeout"));
    assert_eq!(lost.as_deref(), Some(b));
    let (text, lost) = compare(a, &Side::Failed("refused"), b, &streamed);
    assert_eq!(lost, None);
    assert!(text.contains("could not be probed"));
}

#[test]
fn durations_read_well() {
    assert_eq!(human(us(400)), "0.4 ms");
    assert_eq!(human(ms(95)), "95 ms");
    assert_eq!(human(ms(2414)), "2.41 s");
    assert_eq!(longest_gap(&[ms(1), ms(5), ms(100), ms(101)]), ms(95));
    assert_eq!(longest_gap(&[ms(1)]), Duration::ZERO);
}

//! Topics in a load run: how streams and publishes are spread over `--topics K` topics
//! (`--topic-dist uniform|zipf:S`), and the tally that checks delivery topic by topic.
//!
//! Rules:
//! - Topics are named `t0` .. `t{K-1}`; a stream on topic `k` asks for `?topic=tk`, a publish to it
//!   posts to `?topic=tk`, and the event's data carries ` k=K` after the publisher's stamp, so a
//!   subscriber knows which topic an event was published to. One received on another topic than the
//!   stream's is an error (`wrong_topic`), never a delivery.
//! - Spreading is a pure function of an index, so every process of a `--procs` run agrees on it without
//!   talking: stream `n` of worker `w` of `P` has the global index `n × P + w`. `uniform` deals streams
//!   and publishes round robin (exactly even); `zipf:S` draws topic `k` with probability ∝ 1/(k+1)^S
//!   (topic `t0` the hottest), from a hash of the index.
//! - What is expected is known only once the processes' tallies are merged: per topic, the publishes the
//!   server accepted times the streams on it; the sum is the run's `expected`.

use std::str::FromStr;

use clap::Args;

/// How topics are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// Round robin: every topic gets the same share.
    Uniform,
    /// Zipf with exponent `S`: a few hot topics and a long tail.
    Zipf(f64),
}

impl FromStr for Dist {
    type Err = String;

    fn from_str(text: &str) -> Result<Dist, String> {
        match text.split_once(':') {
            None if text == "uniform" => Ok(Dist::Uniform),
            Some(("zipf", s)) => match s.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 10.0 => Ok(Dist::Zipf(s)),
                _ => Err(format!("zipf's exponent must be a number in (0, 10], not {s:?}")),
            },
            _ => Err(format!("expected `uniform` or `zipf:S`, not {text:?}")),
        }
    }
}

impl std::fmt::Display for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dist::Uniform => f.write_str("uniform"),
            Dist::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// The topic flags (streams and publishes of every stream mode).
#[derive(Args, Debug, Clone)]
pub struct TopicArgs {
    /// Spread the streams over this many topics (`?topic=t0` .. `t{K-1}`), and publish to them alike;
    /// delivery is then checked per topic. 0: no topic (the server's default topic).
    #[arg(long, default_value_t = 0)]
    pub topics: u32,
    /// How streams and publishes are spread over the topics: `uniform` (round robin) or `zipf:S`
    /// (topic k drawn with probability ∝ 1/(k+1)^S: a few hot topics, a long tail).
    #[arg(long, default_value = "uniform", value_parser = Dist::from_str)]
    pub topic_dist: Dist,
    /// (Set by a `--procs` parent for its workers) the global index of stream n is n × stride + offset.
    #[arg(long, default_value_t = 1, hide = true)]
    pub topic_stride: u64,
    #[arg(long, default_value_t = 0, hide = true)]
    pub topic_offset: u64,
}

impl TopicArgs {
    /// Worker `worker`'s flags (of `procs`).
    pub fn to_args(&self, procs: u64, worker: u64) -> Vec<String> {
        if self.topics == 0 {
            return Vec::new();
        }
        let flags = [
            ("--topics", self.topics.to_string()),
            ("--topic-dist", self.topic_dist.to_string()),
            ("--topic-stride", procs.to_string()),
            ("--topic-offset", worker.to_string()),
        ];
        flags.into_iter().flat_map(|(name, value)| [name.to_owned(), value]).collect()
    }

    /// The spread, if the run has topics.
    pub fn spread(&self) -> Option<Spread> {
        (self.topics > 0)
            .then(|| Spread::new(self.topics, self.topic_dist, self.topic_stride, self.topic_offset))
    }
}

/// Which topic each stream and each publish goes to.
#[derive(Debug, Clone)]
pub struct Spread {
    count: u32,
    dist: Dist,
    stride: u64,
    offset: u64,
    /// Zipf's cumulative distribution (empty for uniform).
    cdf: Vec<f64>,
}

impl Spread {
    pub fn new(count: u32, dist: Dist, stride: u64, offset: u64) -> Spread {
        let count = count.max(1);
        let cdf = match dist {
            Dist::Uniform => Vec::new(),
            Dist::Zipf(s) => {
                let mut sum = 0.0;
                let mut cdf: Vec<f64> = (0..count)
                    .map(|k| {
                        sum += 1.0 / f64::from(k + 1).powf(s);
                        sum
                    })
                    .collect();
                cdf.iter_mut().for_each(|c| *c /= sum);
                cdf
            }
        };
        Spread { count, dist, stride: stride.max(1), offset, cdf }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn dist(&self) -> Dist {
        self.dist
    }

    /// The topic of this process's `n`th stream.
    pub fn stream_topic(&self, n: u64) -> u32 {
        self.draw(n * self.stride + self.offset, 0x5eed_5eed)
    }

    /// The topic of the `seq`th publish (one process publishes).
    pub fn publish_topic(&self, seq: u64) -> u32 {
        self.draw(seq, 0x9ab1_15e5)
    }

    fn draw(&self, index: u64, salt: u64) -> u32 {
        if self.cdf.is_empty() {
            return (index % u64::from(self.count)) as u32;
        }
        let u = (mix(index ^ salt) >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c <= u).min(self.count as usize - 1) as u32
    }
}

/// A topic's name.
pub fn name(topic: u32) -> String {
    format!("t{topic}")
}

/// The query that puts a request on `topic`, after the URL's own query if it has one.
pub fn with_topic(path: &str, topic: u32) -> String {
    let joint = if path.contains('?') { '&' } else { '?' };
    format!("{path}{joint}topic={}", name(topic))
}

/// The topic an event's data says it was published to (` k=N` after the stamp).
pub fn topic_of(data: &str) -> Option<u32> {
    data.split(' ').take(3).find_map(|part| part.strip_prefix("k="))?.parse().ok()
}

/// SplitMix64's finalizer: a well-spread 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse() {
        assert_eq!("uniform".parse::<Dist>(), Ok(Dist::Uniform));
        assert_eq!("zipf:1.1".parse::<Dist>(), Ok(Dist::Zipf(1.1)));
        for bad in ["", "zipf", "zipf:", "zipf:0", "zipf:-1", "zipf:x", "normal"] {
            assert!(bad.parse::<Dist>().is_err(), "{bad}");
        }
    }

    #[test]
    fn uniform_deals_round_robin_over_every_process() {
        let (a, b) = (Spread::new(4, Dist::Uniform, 2, 0), Spread::new(4, Dist::Uniform, 2, 1));
        let topics: Vec<u32> = (0..4).flat_map(|n| [a.stream_topic(n), b.stream_topic(n)]).collect();
        assert_eq!(topics, [0, 1, 2, 3, 0, 1, 2, 3]);
        let one = Spread::new(3, Dist::Uniform, 1, 0);
        assert_eq!((0..6).map(|s| one.publish_topic(s)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn zipf_makes_the_first_topics_hot_and_reaches_the_tail() {
        let spread = Spread::new(100, Dist::Zipf(1.0), 1, 0);
        let mut counts = [0u32; 100];
        for n in 0..100_000 {
            counts[spread.stream_topic(n) as usize] += 1;
        }
        // P(t0) = 1 / H(100) ≈ 0.193; P(t1) ≈ 0.096; the tail gets some.
        assert!((17_000..21_500).contains(&counts[0]), "{}", counts[0]);
        assert!((8_000..11_000).contains(&counts[1]), "{}", counts[1]);
        assert!(counts[99] > 50, "{}", counts[99]);
        assert_eq!(counts.iter().sum::<u32>(), 100_000);
    }

    #[test]
    fn names_queries_and_the_topic_in_an_events_data() {
        assert_eq!(with_topic("/home/events", 3), "/home/events?topic=t3");
        assert_eq!(with_topic("/home/events?interval_ms=0", 3), "/home/events?interval_ms=0&topic=t3");
        assert_eq!(topic_of("seq=4 t=1700000000000000000 k=17 xxxx"), Some(17));
        assert_eq!(topic_of("seq=4 t=1700000000000000000 xxxx"), None);
        assert_eq!(topic_of("12:00:00.000"), None);
    }
}

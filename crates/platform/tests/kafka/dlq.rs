//! `just dlq`: the inventory and the replay of the dead-letter topic against the real broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use platform::kafka::dlq::{self, Origin, ReplayError};
use platform::kafka::topics::{self, TopicSpec, TopicsConfig};
use platform::testing::{eventually, unique};

use crate::helpers::{Action, Fixture, PATIENCE, Recorder, payloads, wait_for};

#[derive(Parser)]
struct Topics {
    #[command(flatten)]
    topics: TopicsConfig,
}

#[tokio::test]
async fn dead_letters_are_listed_once_per_record_and_replayed_exactly_once_however_often_replay_runs() {
    let mut fx = Fixture::new().await;
    // A dead-letter topic of several partitions: a replay's marker may land on another one
    // than its entry.
    fx.dead_letters = unique("test-dlq");
    topics::ensure(&fx.kafka, &[TopicSpec::new(&fx.dead_letters).partitions(3)]).await.expect("created");
    let config =
        Topics::parse_from(["t", "--topic-user-commands", &fx.topic, "--topic-dead-letters", &fx.dead_letters]);
    let topics = config.topics;

    let fixed = Arc::new(AtomicBool::new(false));
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for _ in 0..2 {
        fx.group = unique("test-group");
        let fixed = Arc::clone(&fixed);
        let recorder = Recorder::new(move |m, _| {
            let poison = m.payload.as_deref() == Some(b"poison");
            if poison && !fixed.load(Ordering::SeqCst) { Action::FailPermanently } else { Action::Apply }
        });
        logs.push(recorder.log());
        running.push(fx.consume(recorder));
    }
    fx.produce(&["a", "poison", "b"]).await;
    let origin = Origin { topic: fx.topic.clone(), partition: 0, offset: 1 };

    let inventory = eventually("both readers' dead letters", PATIENCE, || async {
        let inventory = dlq::inventory(&fx.kafka, &fx.dead_letters, None).await.expect("read");
        (inventory.records == 2).then_some(inventory)
    })
    .await;
    assert_eq!(inventory.letters.len(), 1, "one entry for the record both readers gave up on");
    let letter = &inventory.letters[&origin];
    assert_eq!((letter.groups.len(), letter.code.as_str(), letter.replayed_to.as_deref()), (2, "rejected", None));
    let groups = inventory.groups();
    assert_eq!((groups.len(), groups[0].entries, groups[0].replayed), (1, 1, 0));

    for refused in [topics.user_events.as_str(), topics.user_state.as_str(), &fx.dead_letters, "not.a.topic"] {
        let outcome = dlq::replay(&fx.kafka, &topics, refused).await;
        assert!(matches!(outcome, Err(ReplayError::Refused(_))), "{refused}: {outcome:?}");
    }

    fixed.store(true, Ordering::SeqCst);
    let done = dlq::replay(&fx.kafka, &topics, &fx.topic).await.expect("replayed");
    let copy = format!("{}/0/3", fx.topic);
    assert_eq!((done.replayed, done.before), (vec![(origin.clone(), copy.clone())], 0));
    for log in &logs {
        let seen = wait_for(log, 4).await;
        assert_eq!(payloads(log), ["a", "poison", "b", "poison"], "each reader gets the copy");
        let replayed = &seen[3];
        assert_eq!((replayed.partition, replayed.key.as_deref()), (0, Some(&b"k"[..])), "same partition and key");
        assert_eq!(replayed.header("trace-id"), Some(&b"t-1"[..]), "the original headers");
        assert!(replayed.headers.iter().all(|(name, _)| !name.starts_with("dlq.")), "none of the dead letter's");
    }

    let again = dlq::replay(&fx.kafka, &topics, &fx.topic).await.expect("nothing to do");
    assert_eq!((again.replayed.len(), again.before), (0, 1), "a second run replays nothing");
    let inventory = dlq::inventory(&fx.kafka, &fx.dead_letters, None).await.expect("read");
    assert_eq!(inventory.letters[&origin].replayed_to.as_deref(), Some(copy.as_str()));

    // Two replays at once of a new entry: one copy, whichever wins.
    fixed.store(false, Ordering::SeqCst);
    fx.produce(&["poison"]).await;
    eventually("the second entry", PATIENCE, || async {
        let inventory = dlq::inventory(&fx.kafka, &fx.dead_letters, None).await.expect("read");
        (inventory.letters.len() == 2 && inventory.letters.values().all(|l| l.groups.len() == 2)).then_some(())
    })
    .await;
    fixed.store(true, Ordering::SeqCst);
    let (first, second) =
        tokio::join!(dlq::replay(&fx.kafka, &topics, &fx.topic), dlq::replay(&fx.kafka, &topics, &fx.topic));
    let replayed: usize = [&first, &second].iter().filter_map(|r| r.as_ref().ok()).map(|r| r.replayed.len()).sum();
    assert!(first.is_ok() || second.is_ok(), "{first:?} {second:?}");
    assert_eq!(replayed, 1, "{first:?} {second:?}");
    let (copies, _) = platform::kafka::replay(&fx.kafka, &fx.topic, 0, |n, m| {
        *n += usize::from(m.payload.as_deref() == Some(b"poison"));
    })
    .await
    .expect("read");
    assert_eq!(copies, 4, "two originals and one copy of each");
    for reader in running {
        reader.stop().await;
    }
}

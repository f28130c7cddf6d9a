"""Who wants what: per topic, per channel, on or off, and the low-balance threshold.

A user's stored preferences hold only what they changed; everything else is the default
(API.md "Notifications"): `in_app` on for every topic; `email` on for security, deposit,
transfer_received and low_balance; `sms` off. Security email cannot be turned off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from app.services.errors import ValidationFailed
from app.vocabulary import NotificationChannel, NotificationTopic

Topic, Channel = NotificationTopic, NotificationChannel

DEFAULT_LOW_BALANCE_THRESHOLD = 100
EMAIL_BY_DEFAULT = frozenset({Topic.SECURITY, Topic.DEPOSIT, Topic.TRANSFER_RECEIVED, Topic.LOW_BALANCE})
# (topic, channel) pairs a user cannot turn off: a security message must reach a mailbox.
LOCKED_ON = frozenset({(Topic.SECURITY, Channel.EMAIL)})


def default_choice(topic: str, channel: str) -> bool:
    if channel == Channel.IN_APP:
        return True
    if channel == Channel.EMAIL:
        return topic in EMAIL_BY_DEFAULT
    return False


@dataclass(frozen=True)
class Preferences:
    changed: dict[str, dict[str, bool]] = field(default_factory=dict)  # what the user set
    threshold: int | None = None

    @classmethod
    def stored(cls, topics_json: str | None, threshold: int | None) -> Preferences:
        return cls(json.loads(topics_json) if topics_json else {}, threshold)

    def wants(self, topic: str, channel: str) -> bool:
        if (topic, channel) in LOCKED_ON:
            return True
        return self.changed.get(topic, {}).get(channel, default_choice(topic, channel))

    @property
    def low_balance_threshold(self) -> int:
        return DEFAULT_LOW_BALANCE_THRESHOLD if self.threshold is None else self.threshold

    def public(self) -> dict:
        """`{topics: {topic: {in_app, email, sms}}, low_balance_threshold}` with every topic."""
        return {
            "topics": {topic.value: {ch.value: self.wants(topic, ch) for ch in Channel} for topic in Topic},
            "low_balance_threshold": self.low_balance_threshold,
        }

    def merged(self, patch: dict) -> Preferences:
        """These preferences with a PATCH body applied (already shape-checked by its schema);
        422 for turning off what cannot be, with nothing applied."""
        changed = {topic: dict(choices) for topic, choices in self.changed.items()}
        problems: dict[str, list[str]] = {}
        for topic, choices in (patch.get("topics") or {}).items():
            for channel, on in choices.items():
                if not on and (topic, channel) in LOCKED_ON:
                    problems[f"topics.{topic}.{channel}"] = [f"{topic} {channel} cannot be turned off"]
                changed.setdefault(topic, {})[channel] = on
        if problems:
            raise ValidationFailed(details=problems)
        threshold = patch.get("low_balance_threshold", self.threshold)
        return Preferences(changed, threshold)

    def topics_json(self) -> str:
        return json.dumps(self.changed, sort_keys=True, separators=(",", ":"))

"""A DDS participant that speaks ROS 2: typed readers and writers with ROS QoS and type hashes.

The one place that turns `conventions.QosProfile` into Cyclone DDS QoS. Every reader and writer
carries the RIHS01 type hash of its ROS type in USER_DATA (as Iron/Jazzy RMWs announce it) and
uses plain CDR (XCDR1), the representation ROS 2 RMWs exchange.

Thread safety: Cyclone DDS entities may be used from any thread; `write()` is thread-safe.
"""

from __future__ import annotations

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from robot_bridge.dds.conventions import (
    Durability,
    QosProfile,
    Reliability,
    dds_topic_name,
    type_hash_user_data,
)
from robot_bridge.dds.msgs import ROS_TYPE_NAMES

LOOPBACK_CONFIG = (
    "<CycloneDDS><Domain Id=\"any\"><General><Interfaces>"
    "<NetworkInterface address=\"127.0.0.1\"/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General>"
    "<Discovery><ParticipantIndex>auto</ParticipantIndex>"
    "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
    "<Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery></Domain></CycloneDDS>"
)
"""Cyclone DDS configuration that keeps a domain on the loopback interface (unicast discovery
of up to 32 participants on 127.0.0.1), for tests and benchmarks on one machine."""


def ros_qos(profile: QosProfile, ros_type: str) -> Qos:
    """Cyclone DDS QoS of a ROS 2 reader or writer of `ros_type` with `profile`."""
    reliability = (
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
        if profile.reliability is Reliability.RELIABLE
        else Policy.Reliability.BestEffort
    )
    durability = (
        Policy.Durability.TransientLocal
        if profile.durability is Durability.TRANSIENT_LOCAL
        else Policy.Durability.Volatile
    )
    return Qos(
        reliability,
        durability,
        Policy.History.KeepLast(depth=profile.depth),
        Policy.DataRepresentation(use_cdrv0_representation=True),
        Policy.Userdata(data=type_hash_user_data(ros_type)),
    )


class RosDdsNode:
    """One DomainParticipant with ROS 2-named topics.

    Args:
        domain_id: DDS domain (ROS_DOMAIN_ID), 0..232.
        config: Cyclone DDS XML configuration (or a `file://` URI) for this domain; None uses
            the process's CYCLONEDDS_URI or Cyclone's defaults.
    """

    def __init__(self, domain_id: int = 0, config: str | None = None) -> None:
        self.domain_id = domain_id
        # a Domain created with an explicit configuration must outlive its participants
        self._domain = Domain(domain_id, config) if config is not None else None
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Topic] = {}

    def _topic(self, ros_topic: str, msg_type: type) -> Topic:
        name = dds_topic_name(ros_topic)
        topic = self._topics.get(name)
        if topic is None:
            topic = Topic(self.participant, name, msg_type)
            self._topics[name] = topic
        return topic

    def writer(self, ros_topic: str, msg_type: type, profile: QosProfile) -> DataWriter:
        """A writer of `msg_type` (a `robot_bridge.dds.msgs` class) on `ros_topic`."""
        qos = ros_qos(profile, ROS_TYPE_NAMES[msg_type])
        return DataWriter(self.participant, self._topic(ros_topic, msg_type), qos=qos)

    def reader(self, ros_topic: str, msg_type: type, profile: QosProfile) -> DataReader:
        """A reader of `msg_type` (a `robot_bridge.dds.msgs` class) on `ros_topic`."""
        qos = ros_qos(profile, ROS_TYPE_NAMES[msg_type])
        return DataReader(self.participant, self._topic(ros_topic, msg_type), qos=qos)

    def close(self) -> None:
        """Delete the participant and everything it created."""
        self._topics.clear()
        self.participant = None  # type: ignore[assignment]
        self._domain = None

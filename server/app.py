"""Assembling and running one city's relay node."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from datetime import datetime
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from tongban.keys.clock import utcnow
from tongban.keys.keyring import NodeKeyRing
from tongban.keys.pki import load_certificates
from tongban.proto import (
    hall_pb2,
    hall_pb2_grpc,
    relay_pb2,
    relay_pb2_grpc,
    seal_pb2,
    seal_pb2_grpc,
)
from tongban.server.config import NodeConfig
from tongban.server.domain.matters import MatterCatalog
from tongban.server.grpc.admission import (
    Admission,
    IdleWatchdog,
    address_caller,
    certificate_caller,
    mtls_lanes,
    public_lanes,
)
from tongban.server.grpc.health_probe import HealthProbe
from tongban.server.grpc.metrics import GrpcMetrics
from tongban.server.grpc.peers import GrpcPeerTransport, PeerChannels
from tongban.server.grpc.request_decoding import add_checked_service
from tongban.server.grpc.seal_servicers import SealServicer, VerifyServicer
from tongban.server.grpc.servicers import HallServicer, RelayServicer
from tongban.server.jobs import NodeJobs
from tongban.server.listen import bind_port
from tongban.server.summary import NodeSummary, usable_seals
from tongban.server.usecases.calendar_book import CalendarBook
from tongban.server.usecases.cases import CaseSteps
from tongban.server.usecases.clock_skew import ClockSkewWatch
from tongban.server.usecases.clocks import ClockHooks
from tongban.server.usecases.delivery import DeliveryDispatcher
from tongban.server.usecases.ecert_records import ECertRecords
from tongban.server.usecases.inbox import HallInbox
from tongban.server.usecases.matter_book import MatterBook
from tongban.server.usecases.national_seals import NationalSealBook, NationalSeals
from tongban.server.usecases.operations import Operations
from tongban.server.usecases.outgoing import OutgoingPackets
from tongban.server.usecases.reachability import StorageReachability
from tongban.server.usecases.receive import ReceivePackets
from tongban.server.usecases.retention import CrashLeftovers, sweep_orphan_blobs
from tongban.server.usecases.runtime import ActiveTransfers, DirectoryHolder, InboxNotifier
from tongban.server.usecases.seal_keys import SealBook
from tongban.server.usecases.seals import SealOffice
from tongban.server.usecases.submit import SubmitPackets
from tongban.server.usecases.supervision import Supervision
from tongban.server.usecases.verify import DocumentVerification
from tongban.server.web.node_backend import NodeBackend
from tongban.server.web.node_site import NodeSite
from tongban.storage.objects import open_object_store
from tongban.storage.sql import open_metadata_store

__all__ = ["RelayNode", "serve"]

_log = logging.getLogger("tongban.server")
_SERVICES = (
    hall_pb2.DESCRIPTOR.services_by_name["HallService"].full_name,
    relay_pb2.DESCRIPTOR.services_by_name["RelayService"].full_name,
    seal_pb2.DESCRIPTOR.services_by_name["SealService"].full_name,
)
_VERIFY = seal_pb2.DESCRIPTOR.services_by_name["VerifyService"].full_name


class RelayNode:
    """A relay node: start it, learn its port, stop it gracefully."""

    def __init__(self, config: NodeConfig, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        roots = load_certificates(config.root_cert.read_bytes())
        directory = DirectoryHolder(config.directory, roots, clock)
        entry = directory.current.node(config.node_id)
        keys = NodeKeyRing.load(config.keys_dir, entry)
        options = {}
        if config.s3_access_key:
            options = {"access_key": config.s3_access_key, "secret_key": config.s3_secret_key}
        self._tls_chain = config.tls_cert.read_bytes()
        self._tls_key = config.tls_key.read_bytes()
        self._root_pem = config.root_cert.read_bytes()
        self.clock = clock
        self.directory = directory
        self.keys = keys
        self.metadata = open_metadata_store(config.database)
        self.objects = open_object_store(config.objects, **options)
        matters = (
            MatterCatalog.from_file(config.matters)
            if config.matters
            else MatterCatalog.load_default()
        )
        self.calendar = CalendarBook(metadata=self.metadata, clock=clock)
        self.calendar.seed_from_package()
        self.matter_book = MatterBook(metadata=self.metadata, clock=clock)
        self.matter_book.seed(matters)
        book = None
        if config.seals_dir is not None and (config.seals_dir / "ca.pem").exists():
            book = SealBook.load(config.seals_dir)
        national = None
        if config.seals_dir is not None and (config.seals_dir / "national" / "ca.der").exists():
            national = NationalSeals(
                node_id=config.node_id,
                metadata=self.metadata,
                book=NationalSealBook.load(config.seals_dir / "national"),
                clock=clock,
            )
        self.transfers = transfers = ActiveTransfers()
        self.clock_skew = ClockSkewWatch(
            tolerance_seconds=config.clock_skew_tolerance_seconds,
            refuse_seconds=config.clock_skew_refuse_seconds,
        )
        notifier = InboxNotifier()
        self.peers = GrpcPeerTransport(
            PeerChannels(self._tls_chain, self._tls_key, config.limits.max_message_bytes)
        )
        self.dispatcher = DeliveryDispatcher(
            metadata=self.metadata,
            directory=directory,
            outgoing=OutgoingPackets(
                node_id=config.node_id, metadata=self.metadata, objects=self.objects
            ),
            limits=config.limits,
            clock=clock,
            policy=config.delivery,
            transport=self.peers,
            clock_skew=self.clock_skew,
        )
        self.seals = SealOffice(
            node_id=config.node_id,
            metadata=self.metadata,
            keys=keys,
            book=book,
            clock=clock,
            verification_url=config.verification_url,
            status_list_hours=config.status_list_hours,
            result_seal=config.result_seal,
            clock_skew=self.clock_skew,
            national=national,
        )
        self.cases = CaseSteps(
            node_id=config.node_id,
            metadata=self.metadata,
            keys=keys,
            directory=directory,
            clock=clock,
            offer_delivery=self.dispatcher.offer,
            clocks=ClockHooks(CalendarBook.calendar_in),
        )
        self.submit = SubmitPackets(
            node_id=config.node_id,
            metadata=self.metadata,
            objects=self.objects,
            keys=keys,
            directory=directory,
            matters=matters,
            limits=config.limits,
            clock=clock,
            seals=self.seals,
            transfers=transfers,
            inbox=notifier,
            offer_delivery=self.dispatcher.offer,
        )
        self.supervision = Supervision(
            node_id=config.node_id,
            metadata=self.metadata,
            calendar=self.calendar,
            keys=keys,
            directory=directory,
            seals=self.seals,
            return_result=self.submit.submit,
            offer_delivery=self.dispatcher.offer,
            clock=clock,
        )
        self.receive = ReceivePackets(
            node_id=config.node_id,
            metadata=self.metadata,
            objects=self.objects,
            keys=keys,
            directory=directory,
            limits=config.limits,
            clock=clock,
            transfers=transfers,
            inbox=notifier,
        )
        self.inbox = HallInbox(
            node_id=config.node_id,
            metadata=self.metadata,
            objects=self.objects,
            keys=keys,
            directory=directory,
            notifier=notifier,
        )
        self.verification = DocumentVerification(
            roots=roots, directory=directory, seals=self.seals, clock=clock
        )
        self.leftovers = CrashLeftovers(
            objects=self.objects,
            transfers=transfers,
            clock=clock,
            longest_transfer_seconds=config.longest_transfer_seconds,
        )
        self.jobs = NodeJobs(config.node_id, self.metadata.engine)
        self.health = health.HealthServicer()
        self.health_probe = HealthProbe(
            self.health,
            ("", *_SERVICES),
            StorageReachability(metadata=self.metadata, objects=self.objects).problem,
            interval=config.health_probe_seconds,
        )
        self.idle_watchdog = IdleWatchdog(config.admission.idle_timeout_seconds)
        self.admission = Admission(
            mtls_lanes(config.admission), certificate_caller, self.idle_watchdog
        )
        self.public_admission = Admission(
            public_lanes(config.admission), address_caller, self.idle_watchdog
        )
        self._server: grpc.Server | None = None
        self._public: grpc.Server | None = None
        self.port = 0
        self.public_port = 0
        # Metrics of both transports and the node's figures, served on the site's /metrics.
        self.metrics_registry = CollectorRegistry()
        self.grpc_metrics = GrpcMetrics(self.metrics_registry)
        # The verification web site, a second public listener ([web] listen).
        self.site: NodeSite | None = None
        if config.web.listen:
            backend = NodeBackend(
                node_id=config.node_id,
                directory=directory,
                clock=clock,
                roots=roots,
                records=ECertRecords(
                    node_id=config.node_id,
                    metadata=self.metadata,
                    directory=directory,
                    seals=self.seals,
                ),
                operations=Operations(
                    node_id=config.node_id, metadata=self.metadata, directory=directory, clock=clock
                ),
            )
            self.site = NodeSite(config, backend, self.metrics_registry)
        self.web_port = 0

    def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        cfg = self.config
        limit = cfg.limits.max_message_bytes
        # A thread for every call the lanes admit: a full lane never waits for another's.
        threads = self.admission.threads(cfg.admission.spare_threads)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
            interceptors=[self.grpc_metrics, self.admission],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        node_id, directory = cfg.node_id, self.directory
        hall = HallServicer(
            node_id=node_id,
            directory=directory,
            submit=self.submit,
            inbox=self.inbox,
            cases=self.cases,
        )
        relay = RelayServicer(directory=directory, receive=self.receive, cases=self.cases)
        seal = SealServicer(node_id=node_id, directory=directory, seals=self.seals)
        add_checked_service(hall_pb2_grpc.add_HallServiceServicer_to_server, hall, server)
        add_checked_service(relay_pb2_grpc.add_RelayServiceServicer_to_server, relay, server)
        add_checked_service(seal_pb2_grpc.add_SealServiceServicer_to_server, seal, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        creds = grpc.ssl_server_credentials(
            [(self._tls_key, self._tls_chain)],
            root_certificates=self._root_pem,
            require_client_auth=True,
        )
        self.port = bind_port(
            lambda address: server.add_secure_port(address, creds), cfg.listen, "[node] listen"
        )
        self.idle_watchdog.start()
        server.start()
        self._server = server
        if cfg.public_listen:
            try:
                self._start_public(cfg.public_listen)
            except OSError:
                server.stop(0).wait()
                self.idle_watchdog.stop()
                raise
        if self.site is not None:
            self.web_port = self.site.start()
        self.health_probe.start()
        self.dispatcher.start()
        self.jobs.start(
            delivery=self.dispatcher.dispatch_due,
            delivery_seconds=cfg.delivery.poll_interval,
            directory=self.directory.refresh,
            directory_seconds=cfg.directory_refresh_seconds,
            orphans=self.sweep_orphans,
            orphan_seconds=cfg.orphan_sweep_seconds,
            supervision=self.supervision.run,
            supervision_seconds=cfg.supervision_seconds,
        )
        self.dispatcher.kick()
        _log.debug("node %s serving on port %d", cfg.node_id, self.port)
        return self.port

    def summary(self) -> NodeSummary:
        """What the started node is: id, name, ports, storage, directory version, seals."""
        return NodeSummary.of(
            self.config,
            directory=self.directory.current,
            seals=usable_seals(self.metadata, self.seals.seals, self.clock()),
            port=self.port,
            public_port=self.public_port,
        )

    def _start_public(self, address: str) -> None:
        """VerifyService for anyone: server-authenticated TLS, no client certificate."""
        threads = self.public_admission.threads(self.config.admission.spare_threads)
        public = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="verify"),
            interceptors=[self.grpc_metrics, self.public_admission],
            options=[("grpc.max_receive_message_length", self.config.limits.max_message_bytes)],
        )
        verify = VerifyServicer(
            verification=self.verification,
            seals=self.seals,
            directory=self.directory,
            limits=self.config.limits,
        )
        add_checked_service(seal_pb2_grpc.add_VerifyServiceServicer_to_server, verify, public)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, public)
        reflection.enable_server_reflection(
            (_VERIFY, health.SERVICE_NAME, reflection.SERVICE_NAME), public
        )
        creds = grpc.ssl_server_credentials([(self._tls_key, self._tls_chain)])
        self.public_port = bind_port(
            lambda a: public.add_secure_port(a, creds), address, "[node] public_listen"
        )
        public.start()
        self._public = public

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give running ones ``grace`` seconds, then cancel the rest.

        A cancelled transfer removes its partial blobs and commits nothing; the sender
        retries it later, so nothing is lost or stored twice.
        """
        grace = self.config.shutdown_grace_seconds if grace is None else grace
        _log.info(
            "node %s stopping: running calls get %.1f s to finish, then are cancelled",
            self.config.node_id,
            grace,
        )
        self.health_probe.stop()
        self.health.enter_graceful_shutdown()
        stopping = [s.stop(grace) for s in (self._server, self._public) if s is not None]
        if self.site is not None:
            self.site.stop(grace)
        for done in stopping:
            done.wait()
        self.idle_watchdog.stop()
        self.jobs.stop()
        self.dispatcher.stop()
        self.peers.close()
        self.objects.close()
        self.metadata.close()
        _log.info("node %s stopped", self.config.node_id)

    def sweep_orphans(self) -> int:
        """Remove blobs no committed packet names, and writes a crash cut off; how many."""
        orphans = sweep_orphan_blobs(self.metadata, self.objects, self.transfers)
        return orphans + self.leftovers.sweep()

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()


def serve(config: NodeConfig, *, announce: Callable[[str], None] = _log.info) -> None:
    """Run a node until SIGTERM or SIGINT, then shut down gracefully.

    ``announce`` receives the node's summary once it serves (the command prints it).
    """
    # Threads that hold the database's write lock hand the GIL back and forth with RPC
    # threads; a short switch interval keeps them from queueing behind it for 5 ms a time.
    sys.setswitchinterval(float(os.environ.get("TONGBAN_SWITCH_INTERVAL", "0.0005")))
    node = RelayNode(config)
    node.start()
    announce(node.summary().text())
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("signal %d: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    node.stop()

"""A local network of several organizations: layout, daemon processes, samples, the tour.

Used by ``datanet devnet`` (``cli/devnet.py``), the end-to-end tests and the
benchmarks. Four layers, each usable alone:

* **Layout** (:mod:`~datanet.devnet.layout`) - :func:`provision` lays out one
  data directory per node under a base directory (org keys, node keys,
  certificates, trust stores, loopback configs) and records it in a manifest
  (``devnet.json``) that :func:`load_devnet` reads back to restart the network.
* **Processes** (:mod:`~datanet.devnet.processes`) - :class:`DaemonSet` starts
  one daemon per node as a child process with the command its caller gives,
  waits until each API answers, and stops them all; :class:`StopSignals`.
* **Samples** (:mod:`~datanet.devnet.samples`) - :data:`SAMPLE_DATASETS`,
  realistic DCAT-style descriptions kept in ``samples.toml``, that
  :func:`publish_samples` signs with a node's key and publishes through that
  node's HTTP API.
* **Tour** (:mod:`~datanet.devnet.tour`) - :func:`run_tour`: publish → resolve
  from another org's node → update → resolve again from the network → search,
  all through the API.

Invariants:
* Only loopback addresses are ever configured.
* Every daemon a :class:`DaemonSet` started is stopped when the set is closed.
* Nothing here talks to a daemon except through :class:`datanet.client.Client`
  (the HTTP API); nothing here imports py-libp2p, trio or the command line.
"""

from __future__ import annotations

from datanet.devnet.layout import (
    CERT_DAYS,
    MANIFEST_FILE,
    ORG_NAMES,
    Devnet,
    DevnetError,
    DevnetNode,
    DevnetOrg,
    find_free_ports,
    is_devnet,
    load_devnet,
    provision,
    renew_certificates,
)
from datanet.devnet.processes import (
    DaemonCommand,
    DaemonProcess,
    DaemonSet,
    DaemonStartError,
    StopSignals,
    child_env,
    cli_display_command,
    daemon_pid,
    start_network,
)
from datanet.devnet.samples import (
    SAMPLE_DATASETS,
    TOUR_DATASET,
    TOUR_SEARCH,
    TOUR_UPDATED_TITLE,
    PublishedSample,
    SampleDataset,
    Samples,
    SamplesError,
    build_descriptor,
    load_samples,
    next_sequence,
    parse_samples,
    publish_samples,
    samples_for,
    sign_for_node,
)
from datanet.devnet.tour import TourFailed, TourStep, run_tour

__all__ = [
    "CERT_DAYS",
    "MANIFEST_FILE",
    "ORG_NAMES",
    "SAMPLE_DATASETS",
    "TOUR_DATASET",
    "TOUR_SEARCH",
    "TOUR_UPDATED_TITLE",
    "DaemonCommand",
    "DaemonProcess",
    "DaemonSet",
    "DaemonStartError",
    "Devnet",
    "DevnetError",
    "DevnetNode",
    "DevnetOrg",
    "PublishedSample",
    "SampleDataset",
    "Samples",
    "SamplesError",
    "StopSignals",
    "TourFailed",
    "TourStep",
    "build_descriptor",
    "child_env",
    "cli_display_command",
    "daemon_pid",
    "find_free_ports",
    "is_devnet",
    "load_devnet",
    "load_samples",
    "next_sequence",
    "parse_samples",
    "provision",
    "publish_samples",
    "renew_certificates",
    "run_tour",
    "samples_for",
    "sign_for_node",
    "start_network",
]

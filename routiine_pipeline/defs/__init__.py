"""Dagster definitions: a thin layer over the plain modules of the package."""

import warnings

import dagster as dg

# Partitioned asset checks, MultiToSingleDimensionPartitionMapping and spec
# mapping are beta or preview APIs in Dagster 1.13. Their warnings on every
# load give an operator nothing to act on, so they are silenced here, before
# any definition module is imported.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

"""Airflow asset events for `ragloop://runs`: recording a run or a vote nudges the feedback DAG."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from ragloop.airflow.assets import runs_asset
from ragloop.catalog import RUNS_ASSET_URI

log = logging.getLogger(__name__)


def emit_runs_event(extra: dict) -> bool:
    """Record an asset event for `ragloop://runs` in Airflow's metadata DB, so DAGs scheduled on
    it start. Registers the asset first if no DAG has declared it yet. Never raises: the run or
    vote is already stored, and the nightly schedule grades it anyway."""
    try:
        from airflow.assets.manager import asset_manager
        from airflow.models.asset import AssetActive, AssetModel
        from airflow.utils.session import create_session

        asset = runs_asset()  # its URI as Airflow normalizes it, so it is the asset the DAG consumes
        with create_session() as session:
            model = session.scalar(sa.select(AssetModel).where(AssetModel.name == asset.name, AssetModel.uri == asset.uri))
            if model is None:
                model = AssetModel(name=asset.name, uri=asset.uri, group=asset.group)
                session.add(model)
                session.flush()
            # Mark it active: in local mode (dag.test(), no DAG processor) it would otherwise stay
            # inactive and every event warn. Names are unique among active assets, so an active
            # row with our name and another URI (the un-normalized "ragloop://runs" that earlier
            # ragloop builds registered) gives way.
            active = session.scalars(
                sa.select(AssetActive).where(sa.or_(AssetActive.name == asset.name, AssetActive.uri == asset.uri))
            ).all()
            if not any(row.name == asset.name and row.uri == asset.uri for row in active):
                for stale in active:
                    session.delete(stale)
                session.flush()
                session.add(AssetActive.for_asset(model))
                session.flush()
            event = asset_manager.register_asset_change(asset=model, extra=extra, session=session, source_is_api=True)
        return event is not None
    except Exception as err:  # noqa: BLE001 - an event is a nudge; the schedule is the backstop
        log.warning("Could not emit the %s asset event (%s); the nightly grading run will pick this up", RUNS_ASSET_URI, err)
        return False

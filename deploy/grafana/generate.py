"""Dashboards as code: writes deploy/grafana/dashboards/*.json with grafana-foundation-sdk.

    pip install ".[dev]" && python deploy/grafana/generate.py

Every panel reads the provisioned datasource (uid ``DS_VICTORIAMETRICS``,
provisioning/datasources/victoriametrics.yml). tests/test_deploy.py checks that regenerating
gives the committed files and, against a real VictoriaMetrics, that every expression returns data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as options
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="DS_VICTORIAMETRICS")
SCENARIO = '{scenario=~"$scenario"}'
EXPORTER_JOBS = 'job=~"results-exporter|qoe-exporter|cost-exporter"'
SELF = '{__name__=~"(cost|qoe|results)_exporter_%s"}'


def query(expr: str, legend: str = "{{scenario}}", instant: bool = False,
          ref: str = "A") -> prometheus.Dataquery:
    """One PromQL target on the provisioned datasource."""
    target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref) \
        .datasource(DATASOURCE)
    if instant:
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def variable(name: str, label: str, metric: str) -> dashboard.QueryVariable:
    """A multi-value template variable over one label of one metric (All by default)."""
    return (dashboard.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query(f"label_values({metric}, {name})").multi(True).include_all(True)
            .all_value(".*").refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .current(model.VariableOption(selected=True, text="All", value="$__all")))


def series(title: str, unit: str, *targets: prometheus.Dataquery,
           description: str = "") -> timeseries.Panel:
    """A time-series panel."""
    panel = (timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE)
             .legend(options.VizLegendOptions().show_legend(True)
                     .display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).calcs([]))
             .tooltip(options.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.NONE)))
    if description:
        panel = panel.description(description)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def bars(title: str, unit: str, target: prometheus.Dataquery,
         description: str = "") -> bargauge.Panel:
    """Horizontal bars, one per series, of its last value."""
    panel = (bargauge.Panel().title(title).unit(unit).datasource(DATASOURCE)
             .orientation(common.VizOrientation.HORIZONTAL).with_target(target))
    return panel.description(description) if description else panel


def stat_panel(title: str, unit: str, target: prometheus.Dataquery) -> stat.Panel:
    """One number per series."""
    return (stat.Panel().title(title).unit(unit).datasource(DATASOURCE)
            .reduce_options(options.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .with_target(target))


def table_panel(title: str, *targets: prometheus.Dataquery, description: str = ""
                ) -> table.Panel:
    """Instant values as a table, one row per series."""
    panel = table.Panel().title(title).datasource(DATASOURCE).show_header(True)
    for target in targets:
        panel = panel.with_target(target)
    return panel.description(description) if description else panel


def board(uid: str, title: str, panels: Iterable[Any],
          variables: Iterable[dashboard.QueryVariable] = ()) -> dashboard.Dashboard:
    """A dashboard: panels two per row, ids in order, last hour, refreshed every 30 s."""
    builder = (dashboard.Dashboard(title).uid(uid).tags(["advisor-core", "generated"])
               .time("now-1h", "now").refresh("30s").editable())
    for var in variables:
        builder = builder.with_variable(var)
    for index, panel in enumerate(panels):
        builder = builder.with_panel(panel.id(index + 1).grid_pos(
            model.GridPos(h=8, w=12, x=12 * (index % 2), y=8 * (index // 2))))
    return builder


def cost() -> dashboard.Dashboard:
    scenario = variable("scenario", "Scenario", "cost_total_load_aware")
    region = variable("region", "Region", "cost_exporter_info")
    by_region = ' * on (job, instance) group_left (region) cost_exporter_info{region=~"$region"}'
    return board("advisor-cost", "advisor-core / Cost & CO2", [
        series("Total cost per scenario", "currencyUSD",
               query(f"cost_total_load_aware{SCENARIO}"),
               description="Load-aware energy + compute cost of each scenario's run"),
        series("Energy and compute cost", "currencyUSD",
               query(f"cost_energy_load_aware{SCENARIO}", "energy {{scenario}}"),
               query(f"cost_compute_load_aware{SCENARIO}", "compute {{scenario}}", ref="B")),
        bars("Cost per viewer-hour", "currencyUSD",
             query(f"cost_per_watch_hour{SCENARIO}"),
             description="Total cost / (hours x audience: viewers, else the stream count)"),
        bars("Cost per pixel", "none", query(f"cost_per_pixel{SCENARIO}")),
        series("Hourly energy cost by region", "currencyUSD",
               query(f"cost_usd_per_hour{SCENARIO}{by_region}", "{{region}} {{scenario}}")),
        bars("Monthly projection (720 h)", "currencyUSD",
             query(f"cost_monthly_projection{SCENARIO}{by_region}", "{{region}} {{scenario}}")),
        bars("Monthly savings against the baseline", "currencyUSD",
             query(f"cost_monthly_savings{SCENARIO}"),
             description="Negative above the baseline's power"),
        series("CO2 per hour", "masskg", query(f"co2_emissions_kg_per_hour{SCENARIO}")),
        bars("CO2 per month (720 h)", "masskg", query(f"co2_monthly_projection{SCENARIO}")),
        bars("CO2 avoided per month against the baseline", "masskg",
             query(f"co2_monthly_avoided{SCENARIO}")),
    ], [scenario, region])


def qoe() -> dashboard.Dashboard:
    scenario = variable("scenario", "Scenario", "qoe_vmaf_score")
    return board("advisor-qoe", "advisor-core / Quality of experience", [
        series("VMAF", "none", query(f"qoe_vmaf_score{SCENARIO}")).min(0).max(100),
        series("PSNR", "dB", query(f"qoe_psnr_score{SCENARIO}")),
        series("SSIM", "none", query(f"qoe_ssim_score{SCENARIO}")).min(0).max(1),
        bars("Frame drop rate", "percentunit", query(f"qoe_drop_rate{SCENARIO}")),
        bars("Quality per watt (VMAF/W)", "none", query(f"qoe_quality_per_watt{SCENARIO}")),
        bars("QoE efficiency (VMAF-weighted pixels per joule)", "none",
             query(f"qoe_efficiency_score{SCENARIO}")),
    ], [scenario])


def results() -> dashboard.Dashboard:
    scenario = variable("scenario", "Scenario", "results_scenario_mean_power_watts")
    # Repeated per scenario: each copy draws one scenario, so the band is between two series
    # of fixed names.
    band = (series(
        "Measured vs predicted power: $scenario", "watt",
        query(f"results_scenario_mean_power_watts{SCENARIO}", "measured"),
        query(f"results_scenario_predicted_power_watts{SCENARIO}", "predicted", ref="B"),
        query(f"results_scenario_predicted_power_pi_low_watts{SCENARIO}", "PI low", ref="C"),
        query(f"results_scenario_predicted_power_pi_high_watts{SCENARIO}", "PI high", ref="D"),
        query(f"results_scenario_prediction_extrapolated{SCENARIO}", "extrapolated", ref="E"),
        description="The band is the 95 % interval for one new measurement at the scenario's "
                    "configuration; 'extrapolated' is 1 outside the trained range")
        .repeat("scenario").repeat_direction("h")
        .override_by_name("PI high", [
            model.DynamicConfigValue(id_val="custom.fillBelowTo", value="PI low"),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=20),
            model.DynamicConfigValue(id_val="custom.lineWidth", value=0)])
        .override_by_name("PI low", [
            model.DynamicConfigValue(id_val="custom.lineWidth", value=0)])
        .override_by_name("extrapolated", [
            model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
            model.DynamicConfigValue(id_val="unit", value="bool_yes_no"),
            model.DynamicConfigValue(id_val="custom.drawStyle", value="points")]))
    return board("advisor-results", "advisor-core / Results & predictions", [
        stat_panel("Scenarios in the newest results file", "none",
                   query("results_scenarios_total", "{{job}}")),
        band,
        table_panel("Extrapolated predictions",
                    query(f"results_scenario_prediction_extrapolated{SCENARIO} == 1",
                          instant=True),
                    description="Predictions outside the trained range or for an unseen "
                                "category: read their interval with care"),
        bars("Power model: training rows", "none",
             query("results_model_training_rows * on (job, instance) group_left (model) "
                   "results_model_info", "{{model}}")),
        bars("Energy efficiency", "none", query(f"results_scenario_efficiency_score{SCENARIO}")),
        series("Energy per scenario", "joule",
               query(f"results_scenario_total_energy_joules{SCENARIO}")),
        series("Duration", "s", query(f"results_scenario_duration_seconds{SCENARIO}")),
        series("Average FPS", "none", query(f"results_scenario_avg_fps{SCENARIO}")),
        series("Frames: total and dropped", "none",
               query(f"results_scenario_total_frames{SCENARIO}", "total {{scenario}}"),
               query(f"results_scenario_dropped_frames{SCENARIO}", "dropped {{scenario}}",
                     ref="B")),
        series("VMAF and PSNR", "none",
               query(f"results_scenario_vmaf_score{SCENARIO}", "VMAF {{scenario}}"),
               query(f"results_scenario_psnr_score{SCENARIO}", "PSNR {{scenario}}", ref="B")),
    ], [scenario])


def recommendations() -> dashboard.Dashboard:
    return board("advisor-recommendations", "advisor-core / Recommendations", [
        table_panel("Best configuration per output ladder",
                    query("results_recommendation_best_per_ladder == 1", instant=True),
                    description="One row per ladder and score algorithm (advisor recommend)"),
        bars("Efficiency ranking (1 = best)", "none",
             query("results_recommendation_efficiency_rank", "{{algorithm}}: {{scenario}}")),
        table_panel("Quality/energy Pareto front",
                    query("results_recommendation_pareto_optimal == 1", instant=True),
                    description="Configurations no other beats on both VMAF and energy"),
        bars("Efficiency score by scenario", "none",
             query("results_scenario_efficiency_score")),
    ])


def health() -> dashboard.Dashboard:
    return board("advisor-exporter-health", "advisor-core / Exporter health", [
        stat_panel("Scrape up", "none", query(f"up{{{EXPORTER_JOBS}}}", "{{job}}")),
        stat_panel("Serving fresh data (exporter up)", "none", query(SELF % "up", "{{job}}")),
        series("Refresh duration", "s",
               query(SELF % "refresh_duration_seconds", "{{job}}")),
        series("Refresh errors per hour", "none",
               query(f"increase({SELF % 'refresh_errors_total'}[1h])", "{{job}}")),
        series("Skipped scenarios by reason", "none",
               query(SELF % "skipped_scenarios", "{{job}} {{reason}}")),
        stat_panel("VictoriaMetrics reachable (enrichment)", "none",
                   query(SELF % "victoriametrics_up", "{{job}}")),
        series("Resident memory", "bytes",
               query(f"process_resident_memory_bytes{{{EXPORTER_JOBS}}}", "{{job}}")),
        series("Age of the last refresh", "s",
               query(f"time() - {SELF % 'last_refresh_timestamp_seconds'}", "{{job}}")),
        series("Open HTTP connections", "none",
               query(SELF % "http_connections", "{{job}}")),
    ])


DASHBOARDS = {"cost": cost, "qoe": qoe, "results": results,
              "recommendations": recommendations, "exporter-health": health}


def render(name: str) -> str:
    """The JSON text of one dashboard (sorted keys, two-space indent, final newline)."""
    return JSONEncoder(sort_keys=True, indent=2).encode(DASHBOARDS[name]().build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    out = parser.parse_args(argv).output
    out.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        (out / f"{name}.json").write_text(render(name), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

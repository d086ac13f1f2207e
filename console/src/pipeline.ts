// The pipeline, live: one sample a second over Server-Sent Events, drawn with uPlot
// (intake/s, persisted/s, DLQ/s; consumer lag), with the current figures as text for
// everyone the charts do not reach.

import uPlot from "uplot";
import type { PipelineSnapshot } from "@registrar/client";
import type { Ctx } from "./main.js";
import { errorBox, h, table, view } from "./ui.js";

/** Samples kept on the charts (two minutes). */
const WINDOW = 120;

function card(id: string, label: string): HTMLElement {
  return h("div", { class: "card" }, h("div", { class: "value", id }, "—"), h("div", { class: "label" }, label));
}

function fmt(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined ? "n/a" : v.toFixed(digits).replace(/\.0+$/, "");
}

function chart(title: string, series: { label: string; stroke: string }[], into: HTMLElement): uPlot {
  const opts: uPlot.Options = {
    title,
    width: Math.max(280, into.clientWidth || 600),
    height: 220,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true }))],
    axes: [{}, { size: 50 }],
  };
  const data: uPlot.AlignedData = [[], ...series.map(() => [])];
  return new uPlot(opts, data, into);
}

export async function pipelineView(ctx: Ctx): Promise<void> {
  const rateBox = h("div", { class: "chart", role: "img", "aria-label": "Chart of registrations accepted, users persisted and records dead-lettered per second over the last two minutes" });
  const lagBox = h("div", { class: "chart", role: "img", "aria-label": "Chart of the consumer group's total lag over the last two minutes" });
  const partitions = h("div", { id: "partition-lag" });
  const status = h("p", { id: "stream-status", class: "muted" }, "Connecting…");
  view(
    "Pipeline",
    status,
    h(
      "div",
      { class: "cards" },
      card("intake-rate", "accepted/s (this api)"),
      card("persisted-rate", "persisted/s"),
      card("dlq-rate", "dead-lettered/s"),
      card("failed-rate", "failed/s"),
      card("lag-total", "consumer lag"),
      card("hash-queue", "hash queue"),
      card("producer-queue", "producer queue"),
      card("outbox-unsent", "events not relayed"),
      card("outbox-age", "oldest unrelayed (s)"),
      card("mail-unsent", "mails waiting"),
    ),
    h("p", { class: "muted" }, "Lines: ", h("span", { class: "key-intake" }, "accepted/s"), " · ", h("span", { class: "key-persisted" }, "persisted/s"), " · ", h("span", { class: "key-dlq" }, "dead-lettered/s")),
    rateBox,
    lagBox,
    h("h2", {}, "Lag per partition"),
    partitions,
  );
  const rates = chart("Throughput per second", [
    { label: "accepted/s", stroke: "#0a58ca" },
    { label: "persisted/s", stroke: "#116329" },
    { label: "dead-lettered/s", stroke: "#b42318" },
  ], rateBox);
  const lag = chart("Consumer lag", [{ label: "lag", stroke: "#7a4d00" }], lagBox);
  const series: (number | null)[][] = [[], [], [], []];
  const lagSeries: number[][] = [[], []];
  const resize = () => {
    rates.setSize({ width: Math.max(280, rateBox.clientWidth), height: 220 });
    lag.setSize({ width: Math.max(280, lagBox.clientWidth), height: 220 });
  };
  window.addEventListener("resize", resize);
  const abort = new AbortController();
  ctx.cleanup = () => {
    abort.abort();
    window.removeEventListener("resize", resize);
    rates.destroy();
    lag.destroy();
  };

  const set = (id: string, text: string) => {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  };
  const update = (s: PipelineSnapshot) => {
    const t = s.at / 1000;
    series[0]!.push(t);
    series[1]!.push(s.intakePerSec);
    series[2]!.push(s.persistedPerSec ?? null);
    series[3]!.push(s.dlqPerSec ?? null);
    lagSeries[0]!.push(t);
    lagSeries[1]!.push(s.totalLag);
    for (const a of [...series, ...lagSeries]) if (a.length > WINDOW) a.shift();
    rates.setData(series as uPlot.AlignedData);
    lag.setData(lagSeries as uPlot.AlignedData);
    set("intake-rate", fmt(s.intakePerSec));
    set("persisted-rate", fmt(s.persistedPerSec));
    set("dlq-rate", fmt(s.dlqPerSec));
    set("failed-rate", fmt(s.failedPerSec));
    set("lag-total", String(s.totalLag));
    set("hash-queue", String(s.hashQueue));
    set("producer-queue", String(s.producerQueue));
    set("outbox-unsent", fmt(s.outboxUnsent, 0));
    set("outbox-age", fmt(s.outboxOldestSeconds));
    set("mail-unsent", fmt(s.mailUnsent, 0));
    status.textContent = `Live: updated ${new Date(s.at).toLocaleTimeString()}; consumer metrics read from ${s.consumersRead} of ${s.consumersConfigured}.`;
    partitions.replaceChildren(table("Lag per partition", ["Partition", "Lag"], s.lag.map((p) => [String(p.partition), String(p.lag)]), "lag-table"));
  };

  // The stream ends every 15 minutes (and on a restart): reconnect until the view is left.
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        for await (const s of ctx.client.pipelineEvents(abort.signal)) update(s);
      } catch (e) {
        if (abort.signal.aborted) return;
        status.replaceChildren(errorBox(e));
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
}

"""``train`` stage: fit the one generative model on the split and write model, metrics and curve."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unigrec.atomic import stage_outputs, write_json
from unigrec.config import ONE_TOKEN_PER_ITEM, RuntimeConfig, TrainConfig
from unigrec.paths import Layout, require_inputs

if TYPE_CHECKING:
    import pandas as pd

    from unigrec.model.item_codes import CodeComposition, ItemCodes

log = logging.getLogger(__name__)

TASK_WEIGHTS_PLOT = "train_task_weights.png"  # beside the curve plot; not a DVC output (a figure to look at)


def inputs(cfg: TrainConfig, layout: Layout) -> list[tuple[Path, str]]:
    """The files this stage reads, each with the stage that writes it, named once so that whatever copies a
    project's train inputs elsewhere (``benchmarks/quality.py --export``) cannot drift from what the stage
    opens. Atomic IDs need no identifier table: each item is its own token. The query-vector cache is not
    listed: it is a cache, and the stage rebuilds it when it is absent."""
    files = [(layout.items, "ingest"), (layout.events, "split")]
    if cfg.model.item_representation != "atomic":
        files += [(layout.ids_table, "identifiers"), (layout.codebooks, "identifiers")]
    return files


def training_items(cfg: TrainConfig, layout: Layout) -> tuple[ItemCodes, dict[str, Any], CodeComposition | None]:
    """The items as the network writes them (their codes and codebooks) and, for ``hybrid_dense``, the dual
    IDs' codes each item's embedding is composed from: named once for the stage and the benchmarks that
    rebuild its training data.

    Atomic and hybrid_dense items are one token each, in the catalogue's order; the code forms read the
    identifiers stage's IDs."""
    import pandas as pd

    from unigrec.model.item_codes import atomic_item_codes, code_composition, load_item_codes

    if cfg.model.item_representation not in ONE_TOKEN_PER_ITEM:
        items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
        return items, codebooks, None
    catalogue = pd.read_parquet(layout.items, columns=["item_id"])["item_id"].astype(str).tolist()
    items, codebooks = atomic_item_codes(catalogue)
    if cfg.model.item_representation == "atomic":
        return items, codebooks, None
    dual, dual_codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    return items, codebooks, code_composition(dual, dual_codebooks, catalogue)


def query_texts(cfg: TrainConfig, events: pd.DataFrame, items: pd.DataFrame) -> tuple[tuple[str, ...], list]:
    """The texts of the stage's query table, in its order, and the catalogue-alignment pairs they include.

    Named once so that the vectors a project is shipped with (``benchmarks/quality.py --export`` copies the
    cache file of exactly these texts) are the ones the stage looks up: a machine without the text encoder's
    weights then trains without embedding anything. The alignment queries are rows after the events' own, so
    an event's query index does not move."""
    from unigrec.inference.prompts import query_table_texts
    from unigrec.train.alignment import alignment_pairs

    alignment = alignment_pairs(items, cfg.alignment.views) if cfg.alignment.views else []
    events_queries = query_table_texts(events)
    return (*events_queries, *sorted({q for _, q in alignment} - set(events_queries))), alignment


def run(cfg: TrainConfig, layout: Layout, runtime: RuntimeConfig) -> dict[str, Any]:
    import pandas as pd

    from unigrec.inference.retrieval import id_spaces
    from unigrec.model.card import model_card, save_model
    from unigrec.model.vocabulary import PAD
    from unigrec.text_encoder import embed_texts
    from unigrec.threads import torch_threads
    from unigrec.train.curves import epoch_curve, write_curve, write_task_weights_plot
    from unigrec.train.datamodule import PromptCollator
    from unigrec.train.fit import fit_generative_model, prepare_training_data, transformer_dims
    from unigrec.train.quick_eval import validation_report
    from unigrec.train.resume import mark_complete
    from unigrec.train.sizing import sized_for

    require_inputs(inputs(cfg, layout))
    events = pd.read_parquet(layout.events)
    cfg, sizing = sized_for(cfg, events)
    items, codebooks, composition = training_items(cfg, layout)
    texts, alignment = query_texts(cfg, events, pd.read_parquet(layout.items))
    query_table = embed_texts(
        list(texts),
        batch_size=runtime.batch_sizes.text_encoding,
        cache_dir=layout.resolve(runtime.cache_dir),
        show_progress=False,
    )
    data = prepare_training_data(cfg, events, items, codebooks, texts, query_table, alignment, composition)
    with torch_threads(runtime.torch_threads.train):
        result = fit_generative_model(cfg, data, layout.train_work_dir, runtime)
        if not result.is_global_zero:
            return {}  # DDP workers: rank 0 alone evaluates and writes
        report = validation_report(
            net=result.net,
            examples=data.final_examples,
            collate=PromptCollator(
                data.query_table, cfg.model.n_query_tokens, data.vocab.token(PAD), data.items.n_items
            ),
            spaces=id_spaces(data.vocab, data.items),
            popularity=data.popularity,
            beam_size=cfg.eval.beam_size,
            k=cfg.eval.k,
            batch_size=runtime.batch_sizes.validation_prompts,
        )
    dims = transformer_dims(cfg.model, cfg.retrieval_loss, data.vocab, data.serialiser.max_length,
                            data.query_table.shape[1], data.items.n_items, data.composition)
    card = model_card(dims, data.vocab, data.serialiser, cfg.model.item_representation)
    metrics = {
        "item_representation": cfg.model.item_representation,
        "validation": report,
        "training": {
            "epochs": result.epochs_run,
            # the checkpoint kept is the best epoch on this validation metric (AUC for a ranking-only model)
            "selected_on": result.selected_on,
            "best_epoch_score": result.best_score,
            "seconds": round(result.seconds, 1),
            "train_sequences_per_second": round(result.sequences_per_second, 1),
            "train_sequences": len(data.train_sequences),
            "alignment_sequences": len(data.alignment_sequences),  # train.alignment: one-event catalogue searches
            "parameters": sum(p.numel() for p in result.net.parameters()),
            "resumed_after_epoch": result.resumed_after_epoch,  # null: trained in one go
            "device": result.device,
            "sizing": sizing,  # the train.sizing tier the data's size chose, and what its auto keys took
        },
    }
    weights_plot = layout.train_plot.with_name(TASK_WEIGHTS_PLOT)
    files = [layout.train_metrics, layout.train_curve, layout.train_plot, weights_plot]
    with stage_outputs(layout.root, "train", dirs=[layout.model_dir], files=files) as out:
        save_model(out[layout.model_dir], result.net, data.items, card)
        write_json(out[layout.train_metrics], metrics)
        if result.metrics_csv is not None:
            write_curve(epoch_curve(result.metrics_csv), out[layout.train_curve], out[layout.train_plot])
            write_task_weights_plot(result.metrics_csv, out[weights_plot])
    if result.finished:
        mark_complete(layout.train_work_dir)
    k = cfg.eval.k
    summary = {
        f"{s}_{m}": report[s][m]
        for s in ("rec", "search")
        for m in (f"hr@{k}", f"ndcg@{k}", f"popularity_hr@{k}", f"popularity_ndcg@{k}")
    }
    summary["ranking_auc"] = report["ranking"]["auc"]
    log.info("train: %s", ", ".join(f"{key}={value:.4f}" for key, value in summary.items()))
    return summary

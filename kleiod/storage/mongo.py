"""The shared journal: MongoDB through pymongo, artifacts in GridFS.

For a lab or a cluster: the daemons of many machines share one database.
``MongoStorage`` is the Storage interface over it, put together from one
class per noun, each in its own module over one connected database
(``mongo_connection``: the client, the indexes, the translation of pymongo
errors at the seam): ``mongo_executions`` (reservation, leases, status
history), ``mongo_records`` (chunks of records), ``mongo_blobs`` (artifacts
in GridFS), ``mongo_trials`` (queries of trials, tags),
``mongo_transfer`` (moving journals between databases) and ``mongo_removal``
(removing trials).
"""

from __future__ import annotations

from kleiod.storage.mongo_blobs import MongoBlobs
from kleiod.storage.mongo_executions import MongoExecutions
from kleiod.storage.mongo_records import MongoRecords
from kleiod.storage.mongo_removal import MongoRemoval
from kleiod.storage.mongo_transfer import MongoTransfer


class MongoStorage(MongoExecutions, MongoRecords, MongoBlobs, MongoTransfer, MongoRemoval):
    """The Storage interface over one MongoDB database."""

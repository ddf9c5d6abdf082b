#!/usr/bin/python3
"""Talks to a daos_server with messages built here from DAOS's field numbers (src/proto of
daos-stack/daos, v2.6), independently of daos-rs's .proto files and generated code, and checks
that the server decodes the requests and that its answers decode to the expected values.

Usage: daos_wire_check.py HOST:PORT      (insecure; the server has one joined rank 0)
Prints one line per check; exits 1 on the first failure.
"""
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
T = {"string": F.TYPE_STRING, "uint32": F.TYPE_UINT32, "uint64": F.TYPE_UINT64,
     "int32": F.TYPE_INT32, "bool": F.TYPE_BOOL, "double": F.TYPE_DOUBLE}


def message(fd, name, fields, nested=()):
    """fields: (name, number, type or '.pkg.Msg', repeated[, oneof index])."""
    m = fd.message_type.add(name=name)
    for n in nested:
        m.nested_type.add().CopyFrom(n)
    for f in fields:
        fname, num, typ, rep = f[:4]
        fld = m.field.add(name=fname, number=num,
                          label=F.LABEL_REPEATED if rep else F.LABEL_OPTIONAL)
        if typ in T:
            fld.type = T[typ]
        else:
            fld.type = F.TYPE_MESSAGE
            fld.type_name = typ
        if len(f) > 4:
            fld.oneof_index = f[4]
    return m


def build():
    fd = descriptor_pb2.FileDescriptorProto(name="daos_check.proto", package="mgmt",
                                            syntax="proto3")
    message(fd, "LeaderQueryReq", [("sys", 1, "string", 0), ("hosts", 2, "string", 0)])
    message(fd, "LeaderQueryResp", [("current_leader", 1, "string", 0),
                                    ("replicas", 2, "string", 1),
                                    ("DownReplicas", 3, "string", 1)])
    message(fd, "SystemQueryReq", [("sys", 1, "string", 0), ("ranks", 2, "string", 0),
                                   ("hosts", 3, "string", 0), ("state_mask", 4, "uint32", 0)])
    message(fd, "SystemMember", [("addr", 1, "string", 0), ("uuid", 2, "string", 0),
                                 ("rank", 3, "uint32", 0), ("incarnation", 4, "uint64", 0),
                                 ("state", 5, "string", 0), ("fabric_uri", 6, "string", 0),
                                 ("fabric_contexts", 7, "uint32", 0), ("info", 8, "string", 0),
                                 ("fault_domain", 9, "string", 0)])
    message(fd, "SystemQueryResp", [("members", 1, ".mgmt.SystemMember", 1),
                                    ("absentranks", 2, "string", 0),
                                    ("absenthosts", 3, "string", 0),
                                    ("data_version", 4, "uint64", 0)])
    message(fd, "GetAttachInfoReq", [("sys", 1, "string", 0), ("all_ranks", 2, "bool", 0)])
    message(fd, "ClientNetHint", [("provider", 1, "string", 0), ("interface", 2, "string", 0),
                                  ("domain", 3, "string", 0), ("crt_timeout", 5, "uint32", 0),
                                  ("net_dev_class", 6, "uint32", 0),
                                  ("srv_srx_set", 7, "int32", 0),
                                  ("env_vars", 8, "string", 1),
                                  ("provider_idx", 9, "uint32", 0)])
    message(fd, "BuildInfo", [("major", 1, "uint32", 0), ("minor", 2, "uint32", 0),
                              ("patch", 3, "uint32", 0), ("tag", 4, "string", 0)])
    rank_uri = descriptor_pb2.DescriptorProto(name="RankUri")
    for n, num, t in [("rank", 1, F.TYPE_UINT32), ("uri", 2, F.TYPE_STRING),
                      ("provider_idx", 3, F.TYPE_UINT32), ("num_ctxs", 4, F.TYPE_UINT32)]:
        rank_uri.field.add(name=n, number=num, type=t, label=F.LABEL_OPTIONAL)
    message(fd, "GetAttachInfoResp", [("status", 1, "int32", 0),
                                      ("rank_uris", 2, ".mgmt.GetAttachInfoResp.RankUri", 1),
                                      ("ms_ranks", 3, "uint32", 1),
                                      ("client_net_hint", 4, ".mgmt.ClientNetHint", 0),
                                      ("data_version", 5, "uint64", 0),
                                      ("sys", 6, "string", 0),
                                      ("build_info", 9, ".mgmt.BuildInfo", 0)],
            nested=[rank_uri])
    prop = message(fd, "PoolProperty", [("number", 1, "uint32", 0),
                                        ("strval", 2, "string", 0, 0),
                                        ("numval", 3, "uint64", 0, 0)])
    prop.oneof_decl.add(name="value")
    message(fd, "PoolCreateReq", [("uuid", 1, "string", 0), ("sys", 2, "string", 0),
                                  ("user", 3, "string", 0), ("usergroup", 4, "string", 0),
                                  ("acl", 5, "string", 1),
                                  ("properties", 6, ".mgmt.PoolProperty", 1),
                                  ("numsvcreps", 8, "uint32", 0),
                                  ("totalbytes", 9, "uint64", 0),
                                  ("tierratio", 10, "double", 1),
                                  ("numranks", 11, "uint32", 0),
                                  ("ranks", 12, "uint32", 1),
                                  ("tierbytes", 13, "uint64", 1)])
    message(fd, "PoolCreateResp", [("status", 1, "int32", 0), ("svc_ldr", 2, "uint32", 0),
                                   ("svc_reps", 3, "uint32", 1), ("tgt_ranks", 4, "uint32", 1),
                                   ("tier_bytes", 5, "uint64", 1)])
    message(fd, "PoolSetPropReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                   ("properties", 3, ".mgmt.PoolProperty", 1),
                                   ("svc_ranks", 4, "uint32", 1)])
    message(fd, "PoolSetPropResp", [("status", 1, "int32", 0)])
    message(fd, "PoolGetPropReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                   ("properties", 3, ".mgmt.PoolProperty", 1),
                                   ("svc_ranks", 4, "uint32", 1)])
    message(fd, "PoolGetPropResp", [("status", 1, "int32", 0),
                                    ("properties", 2, ".mgmt.PoolProperty", 1)])
    message(fd, "PoolQueryReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                  ("svc_ranks", 3, "uint32", 1), ("query_mask", 4, "uint64", 0)])
    message(fd, "StorageUsageStats", [("total", 1, "uint64", 0), ("free", 2, "uint64", 0),
                                      ("min", 3, "uint64", 0), ("max", 4, "uint64", 0),
                                      ("mean", 5, "uint64", 0), ("media_type", 6, "uint32", 0)])
    message(fd, "PoolRebuildStatus", [("status", 1, "int32", 0), ("state", 2, "uint32", 0),
                                      ("objects", 3, "uint64", 0), ("records", 4, "uint64", 0)])
    message(fd, "PoolQueryResp", [("status", 1, "int32", 0), ("uuid", 2, "string", 0),
                                  ("label", 3, "string", 0), ("total_targets", 4, "uint32", 0),
                                  ("active_targets", 5, "uint32", 0),
                                  ("disabled_targets", 6, "uint32", 0),
                                  ("rebuild", 7, ".mgmt.PoolRebuildStatus", 0),
                                  ("tier_stats", 8, ".mgmt.StorageUsageStats", 1),
                                  ("version", 10, "uint32", 0), ("leader", 11, "uint32", 0),
                                  ("enabled_ranks", 12, "string", 0),
                                  ("disabled_ranks", 13, "string", 0),
                                  ("total_engines", 14, "uint32", 0),
                                  ("pool_layout_ver", 15, "uint32", 0),
                                  ("upgrade_layout_ver", 16, "uint32", 0),
                                  ("state", 17, "uint32", 0), ("svc_ldr", 18, "uint32", 0),
                                  ("svc_reps", 19, "uint32", 1), ("query_mask", 20, "uint64", 0)])
    message(fd, "ListPoolsReq", [("sys", 1, "string", 0)])
    # pool.proto's PoolQueryTarget and ListCont, system.proto's SystemStop/Start (RankResult
    # of shared/ranks.proto kept in this package: only field numbers travel).
    message(fd, "PoolQueryTargetReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                       ("rank", 3, "uint32", 0), ("targets", 4, "uint32", 1),
                                       ("svc_ranks", 5, "uint32", 1)])
    message(fd, "StorageTargetUsage", [("total", 1, "uint64", 0), ("free", 2, "uint64", 0),
                                       ("media_type", 3, "uint32", 0)])
    message(fd, "PoolQueryTargetInfo", [("type", 1, "uint32", 0), ("state", 2, "uint32", 0),
                                        ("space", 3, ".mgmt.StorageTargetUsage", 1)])
    message(fd, "PoolQueryTargetResp", [("status", 1, "int32", 0),
                                        ("infos", 2, ".mgmt.PoolQueryTargetInfo", 1)])
    message(fd, "ListContReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                ("svc_ranks", 3, "uint32", 1)])
    cont = descriptor_pb2.DescriptorProto(name="Cont")
    cont.field.add(name="uuid", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    message(fd, "ListContResp", [("status", 1, "int32", 0),
                                 ("containers", 2, ".mgmt.ListContResp.Cont", 1)], nested=[cont])
    message(fd, "RankResult", [("rank", 1, "uint32", 0), ("action", 2, "string", 0),
                               ("errored", 3, "bool", 0), ("msg", 4, "string", 0),
                               ("state", 5, "string", 0), ("addr", 6, "string", 0)])
    message(fd, "SystemStopReq", [("sys", 1, "string", 0), ("prep", 2, "bool", 0),
                                  ("kill", 3, "bool", 0), ("force", 4, "bool", 0),
                                  ("ranks", 5, "string", 0), ("hosts", 6, "string", 0)])
    message(fd, "SystemStopResp", [("results", 1, ".mgmt.RankResult", 1),
                                   ("absentranks", 2, "string", 0),
                                   ("absenthosts", 3, "string", 0)])
    message(fd, "SystemStartReq", [("sys", 1, "string", 0), ("ranks", 2, "string", 0),
                                   ("hosts", 3, "string", 0)])
    message(fd, "SystemStartResp", [("results", 1, ".mgmt.RankResult", 1),
                                    ("absentranks", 2, "string", 0),
                                    ("absenthosts", 3, "string", 0)])
    pool_entry = descriptor_pb2.DescriptorProto(name="Pool")
    for n, num, t, rep in [("uuid", 1, F.TYPE_STRING, False), ("label", 2, F.TYPE_STRING, False),
                           ("svc_reps", 3, F.TYPE_UINT32, True), ("state", 4, F.TYPE_STRING, False),
                           ("rebuild_state", 5, F.TYPE_STRING, False)]:
        pool_entry.field.add(name=n, number=num, type=t,
                             label=F.LABEL_REPEATED if rep else F.LABEL_OPTIONAL)
    message(fd, "ListPoolsResp", [("status", 1, "int32", 0),
                                  ("pools", 2, ".mgmt.ListPoolsResp.Pool", 1),
                                  ("data_version", 3, "uint64", 0)], nested=[pool_entry])
    message(fd, "PoolDestroyReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                   ("force", 3, "bool", 0), ("svc_ranks", 4, "uint32", 1),
                                   ("recursive", 5, "bool", 0)])
    message(fd, "PoolDestroyResp", [("status", 1, "int32", 0)])
    message(fd, "PoolEvictReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                 ("svc_ranks", 3, "uint32", 1), ("handles", 4, "string", 1),
                                 ("destroy", 5, "bool", 0), ("force_destroy", 6, "bool", 0),
                                 ("machine", 7, "string", 0)])
    message(fd, "PoolEvictResp", [("status", 1, "int32", 0), ("count", 2, "int32", 0)])
    # acl.proto
    message(fd, "AccessControlList", [("entries", 1, "string", 1), ("owner_user", 2, "string", 0),
                                      ("owner_group", 3, "string", 0)])
    message(fd, "ACLResp", [("status", 1, "int32", 0), ("acl", 2, ".mgmt.AccessControlList", 0)])
    message(fd, "GetACLReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                              ("svc_ranks", 3, "uint32", 1)])
    message(fd, "ModifyACLReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                 ("entries", 3, "string", 1), ("svc_ranks", 4, "uint32", 1)])
    message(fd, "DeleteACLReq", [("sys", 1, "string", 0), ("id", 2, "string", 0),
                                 ("principal", 3, "string", 0), ("svc_ranks", 4, "uint32", 1)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    out = {}
    for m in fd.message_type:
        desc = pool.FindMessageTypeByName("mgmt." + m.name)
        try:
            out[m.name] = message_factory.GetMessageClass(desc)
        except AttributeError:
            out[m.name] = message_factory.MessageFactory(pool).GetPrototype(desc)
    return out


def build_ctl():
    """DAOS's ctl StorageScan messages (storage.proto, storage_scm.proto, storage_nvme.proto,
    smd.proto, common.proto), the fields daos-rs fills."""
    fd = descriptor_pb2.FileDescriptorProto(name="daos_ctl_check.proto", package="ctl",
                                            syntax="proto3")
    message(fd, "ResponseState", [("status", 1, "int32", 0), ("error", 2, "string", 0),
                                  ("info", 3, "string", 0)])
    message(fd, "ScanNvmeReq", [("Health", 1, "bool", 0), ("Meta", 2, "bool", 0),
                                ("Basic", 3, "bool", 0), ("MetaSize", 4, "uint64", 0),
                                ("RdbSize", 5, "uint64", 0), ("LinkStats", 6, "bool", 0)])
    message(fd, "ScanScmReq", [("usage", 1, "bool", 0)])
    message(fd, "StorageScanReq", [("nvme", 1, ".ctl.ScanNvmeReq", 0),
                                   ("scm", 2, ".ctl.ScanScmReq", 0)])
    mount = descriptor_pb2.DescriptorProto(name="Mount")
    for n, num, t, rep in [("path", 1, F.TYPE_STRING, False), ("total_bytes", 2, F.TYPE_UINT64, False),
                           ("avail_bytes", 3, F.TYPE_UINT64, False),
                           ("device_list", 4, F.TYPE_STRING, True), ("class", 5, F.TYPE_STRING, False),
                           ("rank", 6, F.TYPE_UINT32, False), ("usable_bytes", 7, F.TYPE_UINT64, False)]:
        mount.field.add(name=n, number=num, type=t,
                        label=F.LABEL_REPEATED if rep else F.LABEL_OPTIONAL)
    message(fd, "ScmNamespace", [("uuid", 1, "string", 0), ("blockdev", 2, "string", 0),
                                 ("dev", 3, "string", 0), ("numa_node", 4, "uint32", 0),
                                 ("size", 5, "uint64", 0),
                                 ("mount", 6, ".ctl.ScmNamespace.Mount", 0)], nested=[mount])
    message(fd, "ScanScmResp", [("namespaces", 2, ".ctl.ScmNamespace", 1),
                                ("state", 3, ".ctl.ResponseState", 0)])
    message(fd, "SmdDevice", [("uuid", 1, "string", 0), ("tgt_ids", 2, "int32", 1),
                              ("total_bytes", 6, "uint64", 0), ("avail_bytes", 7, "uint64", 0),
                              ("rank", 9, "uint32", 0), ("usable_bytes", 15, "uint64", 0)])
    message(fd, "NvmeController", [("model", 1, "string", 0), ("serial", 2, "string", 0),
                                   ("pci_addr", 3, "string", 0), ("fw_rev", 4, "string", 0),
                                   ("socket_id", 5, "int32", 0),
                                   ("smd_devices", 8, ".ctl.SmdDevice", 1),
                                   ("dev_state", 9, "int32", 0)])
    message(fd, "ScanNvmeResp", [("ctrlrs", 1, ".ctl.NvmeController", 1),
                                 ("state", 2, ".ctl.ResponseState", 0)])
    message(fd, "MemInfo", [("hugepages_total", 1, "uint64", 0), ("mem_total_kb", 6, "uint64", 0),
                            ("mem_available_kb", 8, "uint64", 0)])
    # ranks.proto and shared/ranks.proto (the RankResult kept in this package: only field
    # numbers travel), server.proto's SetLogMasks messages.
    message(fd, "RanksReq", [("force", 3, "bool", 0), ("ranks", 4, "string", 0),
                             ("check_mode", 5, "bool", 0)])
    message(fd, "RankResult", [("rank", 1, "uint32", 0), ("action", 2, "string", 0),
                               ("errored", 3, "bool", 0), ("msg", 4, "string", 0),
                               ("state", 5, "string", 0), ("addr", 6, "string", 0)])
    message(fd, "RanksResp", [("results", 1, ".ctl.RankResult", 1)])
    message(fd, "SetLogMasksReq", [("sys", 1, "string", 0), ("masks", 2, "string", 0),
                                   ("streams", 3, "string", 0), ("subsystems", 4, "string", 0),
                                   ("reset_masks", 5, "bool", 0), ("reset_streams", 6, "bool", 0),
                                   ("reset_subsystems", 7, "bool", 0)])
    message(fd, "SetLogMasksResp", [("status", 1, "int32", 0), ("errors", 2, "string", 1)])
    message(fd, "NetworkScanReq", [("provider", 1, "string", 0),
                                   ("excludeinterfaces", 2, "string", 0)])
    message(fd, "FabricInterface", [("provider", 1, "string", 0), ("device", 2, "string", 0),
                                    ("numanode", 3, "uint32", 0), ("priority", 4, "uint32", 0),
                                    ("netdevclass", 5, "uint32", 0)])
    message(fd, "NetworkScanResp", [("interfaces", 1, ".ctl.FabricInterface", 1),
                                    ("numacount", 2, "int32", 0),
                                    ("corespernuma", 3, "int32", 0)])
    message(fd, "StorageScanResp", [("nvme", 1, ".ctl.ScanNvmeResp", 0),
                                    ("scm", 2, ".ctl.ScanScmResp", 0),
                                    ("mem_info", 3, ".ctl.MemInfo", 0)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    out = {}
    for m in fd.message_type:
        desc = pool.FindMessageTypeByName("ctl." + m.name)
        try:
            out[m.name] = message_factory.GetMessageClass(desc)
        except AttributeError:
            out[m.name] = message_factory.MessageFactory(pool).GetPrototype(desc)
    return out


def main():
    target = sys.argv[1]
    M = build()
    ch = grpc.insecure_channel(target)
    md = (("x-daos-component", "admin"), ("x-daos-version", "2.6.0"))

    def call(method, req, resp):
        f = ch.unary_unary("/mgmt.MgmtSvc/" + method, request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=M[resp].FromString)
        return f(req, metadata=md, timeout=60)

    def check(what, cond, detail=""):
        print(("ok   " if cond else "FAIL ") + what + (f": {detail}" if detail and not cond else ""))
        if not cond:
            sys.exit(1)

    lq = call("LeaderQuery", M["LeaderQueryReq"](sys="daos_server"), "LeaderQueryResp")
    check("LeaderQuery names a leader among the replicas",
          lq.current_leader != "" and lq.current_leader in lq.replicas, str(lq))
    sq = call("SystemQuery", M["SystemQueryReq"](sys="daos_server"), "SystemQueryResp")
    check("SystemQuery: rank 0 joined (DAOS's lower-case state)",
          len(sq.members) == 1 and sq.members[0].rank == 0 and sq.members[0].state == "joined"
          and sq.members[0].uuid != "" and sq.members[0].fabric_uri.startswith("ofi+"), str(sq))
    ai = call("GetAttachInfo", M["GetAttachInfoReq"](sys="daos_server", all_ranks=True),
              "GetAttachInfoResp")
    check("GetAttachInfo: rank URIs, provider index, net hint, build info",
          len(ai.rank_uris) == 1 and ai.rank_uris[0].provider_idx == 0
          and ai.rank_uris[0].num_ctxs >= 2 and ai.client_net_hint.provider.startswith("ofi+")
          and ai.build_info.major == 2 and ai.build_info.minor == 6 and ai.sys == "daos_server",
          str(ai))
    P = M["PoolProperty"]
    cr = call("PoolCreate", M["PoolCreateReq"](
        uuid="7f3c2a44-1b2d-4e5f-8a6b-9c0d1e2f3a4b", sys="daos_server", numsvcreps=1,
        tierbytes=[64 << 20, 0], user="alice@", usergroup="staff@",
        acl=["A::OWNER@:rw", "A:G:readers@:r"],
        properties=[P(number=1, strval="pywire"), P(number=5, numval=4)]), "PoolCreateResp")
    check("PoolCreate with DAOS-numbered properties",
          cr.status == 0 and list(cr.tgt_ranks) == [0] and cr.tier_bytes[0] >= (64 << 20) - 4096,
          str(cr))
    sp = call("PoolSetProp", M["PoolSetPropReq"](sys="daos_server", id="pywire",
                                                 properties=[P(number=16, numval=2)]),
              "PoolSetPropResp")
    check("PoolSetProp scrub=timed", sp.status == 0, str(sp))
    # By the UUID the client chose, as DAOS's dmg does.
    gp = call("PoolGetProp", M["PoolGetPropReq"](sys="daos_server",
                                                 id="7f3c2a44-1b2d-4e5f-8a6b-9c0d1e2f3a4b",
                                                 properties=[P(number=1), P(number=5),
                                                             P(number=16)]),
              "PoolGetPropResp")
    got = {p.number: (p.strval if p.WhichOneof("value") == "strval" else p.numval)
           for p in gp.properties}
    check("PoolGetProp returns label, reclaim=time(4), scrub=timed(2)",
          got == {1: "pywire", 5: 4, 16: 2}, str(got))
    pq = call("PoolQuery", M["PoolQueryReq"](sys="daos_server", id="pywire"), "PoolQueryResp")
    check("PoolQuery: targets, tiers (SCM=0, NVME=1), Ready(1), ranks, rebuild idle, leader",
          pq.status == 0 and pq.total_targets == 1 and pq.active_targets == 1
          and [t.media_type for t in pq.tier_stats] == [0, 1]
          and pq.tier_stats[0].total >= pq.tier_stats[0].free > 0
          and pq.state == 1 and pq.enabled_ranks == "0" and pq.rebuild.state == 0
          and pq.svc_ldr == 0 and list(pq.svc_reps) == [0] and pq.label == "pywire", str(pq))
    # DAOS 2.6 dmg's default mask (all but the engines lists): the mask comes back, the space
    # is there (dmg prints it only when the mask says so), no rank lists; health only: no
    # space.
    default = ((1 << 64) - 1) & ~((1 << 2) | (1 << 3) | (1 << 4))
    pq = call("PoolQuery", M["PoolQueryReq"](sys="daos_server", id="pywire", query_mask=default),
              "PoolQueryResp")
    check("PoolQuery with DAOS's default mask: mask echoed, space, no rank lists, layout alike",
          pq.query_mask == default and len(pq.tier_stats) == 2 and pq.enabled_ranks == ""
          and pq.disabled_ranks == "" and pq.rebuild.state == 0
          and pq.pool_layout_ver == pq.upgrade_layout_ver, str(pq))
    health = default & ~1
    pq = call("PoolQuery", M["PoolQueryReq"](sys="daos_server", id="pywire", query_mask=health | 4),
              "PoolQueryResp")
    check("PoolQuery health-only with enabled engines: no space, enabled ranks",
          pq.query_mask == health | 4 and len(pq.tier_stats) == 0 and pq.enabled_ranks == "0",
          str(pq))
    ga = call("PoolGetACL", M["GetACLReq"](sys="daos_server", id="pywire"), "ACLResp")
    check("PoolGetACL: the owners and entries given at create",
          ga.status == 0 and ga.acl.owner_user == "alice@" and ga.acl.owner_group == "staff@"
          and list(ga.acl.entries) == ["A::OWNER@:rw", "A:G:readers@:r"], str(ga))
    ua = call("PoolUpdateACL", M["ModifyACLReq"](sys="daos_server", id="pywire",
                                                 entries=["A::EVERYONE@:r"]), "ACLResp")
    check("PoolUpdateACL adds an entry", list(ua.acl.entries)[-1] == "A::EVERYONE@:r", str(ua))
    da = call("PoolDeleteACL", M["DeleteACLReq"](sys="daos_server", id="pywire",
                                                 principal="g:readers@"), "ACLResp")
    check("PoolDeleteACL removes one", list(da.acl.entries) == ["A::OWNER@:rw", "A::EVERYONE@:r"],
          str(da))
    oa = call("PoolOverwriteACL", M["ModifyACLReq"](sys="daos_server", id="pywire",
                                                    entries=["A::OWNER@:r"]), "ACLResp")
    check("PoolOverwriteACL replaces them", list(oa.acl.entries) == ["A::OWNER@:r"], str(oa))
    lp = call("ListPools", M["ListPoolsReq"](sys="daos_server"), "ListPoolsResp")
    check("ListPools: status, pools with label, UUID, state",
          lp.status == 0 and len(lp.pools) == 1 and lp.pools[0].label == "pywire"
          and lp.pools[0].uuid == "7f3c2a44-1b2d-4e5f-8a6b-9c0d1e2f3a4b"
          and lp.pools[0].state == "Ready" and lp.data_version > 0, str(lp))
    qt = call("PoolQueryTarget", M["PoolQueryTargetReq"](sys="daos_server", id="pywire", rank=0,
                                                          targets=[0]), "PoolQueryTargetResp")
    check("PoolQueryTarget: rank 0 target 0 UP_IN(4) with SCM and NVMe usage",
          qt.status == 0 and len(qt.infos) == 1 and qt.infos[0].state == 4
          and [s.media_type for s in qt.infos[0].space] == [0, 1]
          and qt.infos[0].space[0].total >= qt.infos[0].space[0].free > 0, str(qt))
    lc = call("ListContainers", M["ListContReq"](sys="daos_server", id="pywire"), "ListContResp")
    check("ListContainers: status 0, none yet", lc.status == 0 and len(lc.containers) == 0,
          str(lc))
    ev = call("PoolEvict", M["PoolEvictReq"](sys="daos_server", id="pywire"), "PoolEvictResp")
    check("PoolEvict with no connections: status 0, count 0", ev.status == 0 and ev.count == 0,
          str(ev))
    try:
        call("PoolUpgrade", M["PoolDestroyReq"](sys="daos_server", id="pywire"), "PoolDestroyResp")
        check("PoolUpgrade answers Unimplemented", False, "it answered")
    except grpc.RpcError as e:
        check("PoolUpgrade answers Unimplemented naming it",
              e.code() == grpc.StatusCode.UNIMPLEMENTED and "PoolUpgrade" in e.details(),
              f"{e.code()} {e.details()}")
    dr = call("PoolDestroy", M["PoolDestroyReq"](sys="daos_server", id="pywire"),
              "PoolDestroyResp")
    check("PoolDestroy", dr.status == 0, str(dr))
    # DAOS's dmg --size: the total split by the tier ratio over numranks ranks.
    auto = call("PoolCreate", M["PoolCreateReq"](
        uuid="0b7d6a1e-2c3f-4d5e-9f80-1a2b3c4d5e6f", sys="daos_server", totalbytes=500 << 20,
        tierratio=[0.1, 0.9], numranks=1,
        properties=[P(number=1, strval="pyauto")]), "PoolCreateResp")
    check("PoolCreate with totalbytes, tierratio and numranks: tier bytes per rank",
          auto.status == 0 and list(auto.tgt_ranks) == [0]
          and abs(auto.tier_bytes[0] - (50 << 20)) <= (1 << 20)
          and abs(auto.tier_bytes[1] - (450 << 20)) <= (2 << 20), str(auto))
    dr = call("PoolDestroy", M["PoolDestroyReq"](sys="daos_server", id="pyauto"),
              "PoolDestroyResp")
    check("PoolDestroy of it", dr.status == 0, str(dr))
    C = build_ctl()
    scan = ch.unary_unary("/ctl.CtlSvc/StorageScan", request_serializer=lambda m: m.SerializeToString(),
                          response_deserializer=C["StorageScanResp"].FromString)
    ss = scan(C["StorageScanReq"](nvme=C["ScanNvmeReq"](Meta=True), scm=C["ScanScmReq"](usage=True)),
              metadata=md, timeout=60)
    ns = [n for n in ss.scm.namespaces if n.blockdev == "ramdisk"]
    check("StorageScan with usage: the RAM tier as DAOS's ramdisk namespace, mounted, rank 0",
          len(ns) == 1 and getattr(ns[0].mount, "class") == "ram"
          and ns[0].mount.rank == 0 and ns[0].mount.total_bytes >= ns[0].mount.avail_bytes > 0
          and ns[0].mount.path != "", str(ss.scm))
    devs = [d for c in ss.nvme.ctrlrs for d in c.smd_devices]
    check("StorageScan with meta: each engine bdev a blobstore of rank 0 with its targets",
          len(devs) >= 1 and all(d.rank == 0 and len(d.tgt_ids) >= 1
                                 and d.total_bytes >= d.avail_bytes for d in devs)
          and ss.mem_info.mem_total_kb > 0, str(ss.nvme))
    net = ch.unary_unary("/ctl.CtlSvc/NetworkScan", request_serializer=lambda m: m.SerializeToString(),
                         response_deserializer=C["NetworkScanResp"].FromString)
    ns = net(C["NetworkScanReq"](provider="all"), metadata=md, timeout=60)
    lo = [i for i in ns.interfaces if i.device == "lo"]
    check("NetworkScan: lo as a loopback (ARPHRD 772) interface, priorities in order, NUMA counts",
          len(lo) >= 1 and all(i.netdevclass == 772 for i in lo)
          and [i.priority for i in ns.interfaces] == list(range(len(ns.interfaces)))
          and ns.numacount >= 1 and ns.corespernuma >= 1, str(ns))
    reset = ch.unary_unary("/ctl.CtlSvc/ResetFormatRanks",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=C["RanksResp"].FromString)
    try:
        reset(C["RanksReq"](ranks="0"), metadata=md, timeout=60)
        check("ResetFormatRanks refuses a running rank", False, "it answered")
    except grpc.RpcError as e:
        check("ResetFormatRanks refuses a running rank with DAOS's words",
              e.code() == grpc.StatusCode.FAILED_PRECONDITION
              and "reset format not supported when rank 0 is running" in e.details(),
              f"{e.code()} {e.details()}")
    slm = ch.unary_unary("/ctl.CtlSvc/SetEngineLogMasks",
                         request_serializer=lambda m: m.SerializeToString(),
                         response_deserializer=C["SetLogMasksResp"].FromString)
    lm = slm(C["SetLogMasksReq"](sys="daos_server", masks="INFO,mgmt=DEBUG", reset_streams=True,
                                 reset_subsystems=True), metadata=md, timeout=60)
    check("SetEngineLogMasks: one engine, set", lm.status == 0 and list(lm.errors) == [""],
          str(lm))
    lm = slm(C["SetLogMasksReq"](sys="daos_server", reset_masks=True, reset_streams=True,
                                 reset_subsystems=True), metadata=md, timeout=60)
    check("SetEngineLogMasks: reset to the config", list(lm.errors) == [""], str(lm))
    # Last: the system stopped and started again (DAOS's lower-case member states).
    st = call("SystemStop", M["SystemStopReq"](sys="daos_server", prep=True, kill=True),
              "SystemStopResp")
    check("SystemStop: rank 0 stopped",
          [(r.rank, r.errored, r.state) for r in st.results] == [(0, False, "stopped")], str(st))
    sa = call("SystemStart", M["SystemStartReq"](sys="daos_server"), "SystemStartResp")
    check("SystemStart: rank 0 started", len(sa.results) == 1 and not sa.results[0].errored
          and sa.results[0].action == "start", str(sa))
    print("all checks passed")


if __name__ == "__main__":
    main()

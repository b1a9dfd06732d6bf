//! Style rules of the proto contract, checked on the compiled descriptor set: every message,
//! field, oneof, enum, enum value, service and method carries a comment (grpcurl `describe` shows
//! them), and every enum starts with an `_UNSPECIFIED = 0` value.

use std::collections::HashSet;

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

// Field numbers inside descriptor.proto, which SourceCodeInfo paths are made of.
const FILE_MESSAGE_TYPE: i32 = 4;
const FILE_ENUM_TYPE: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED_TYPE: i32 = 3;
const MESSAGE_ENUM_TYPE: i32 = 4;
const MESSAGE_ONEOF: i32 = 8;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(brook_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// Collects "name: what lacks a comment" for one enum.
fn check_enum(
    e: &EnumDescriptorProto,
    path: Vec<i32>,
    commented: &HashSet<Vec<i32>>,
    bad: &mut Vec<String>,
) {
    let name = e.name();
    if !commented.contains(&path) {
        bad.push(format!("enum {name}"));
    }
    match e.value.first() {
        Some(v) if v.number() == 0 && v.name().ends_with("_UNSPECIFIED") => {}
        _ => bad.push(format!(
            "enum {name} must start with an _UNSPECIFIED = 0 value"
        )),
    }
    for (i, v) in e.value.iter().enumerate() {
        let mut p = path.clone();
        p.extend([ENUM_VALUE, i as i32]);
        if !commented.contains(&p) {
            bad.push(format!("enum value {}", v.name()));
        }
    }
}

fn check_message(
    m: &DescriptorProto,
    path: Vec<i32>,
    commented: &HashSet<Vec<i32>>,
    bad: &mut Vec<String>,
) {
    let name = m.name();
    if !commented.contains(&path) {
        bad.push(format!("message {name}"));
    }
    let child = |kind: i32, i: usize| {
        let mut p = path.clone();
        p.extend([kind, i as i32]);
        p
    };
    for (i, f) in m.field.iter().enumerate() {
        if !commented.contains(&child(MESSAGE_FIELD, i)) {
            bad.push(format!("field {name}.{}", f.name()));
        }
    }
    for (i, o) in m.oneof_decl.iter().enumerate() {
        // proto3 `optional` makes a synthetic oneof named `_field`; it has no source of its own.
        if !o.name().starts_with('_') && !commented.contains(&child(MESSAGE_ONEOF, i)) {
            bad.push(format!("oneof {name}.{}", o.name()));
        }
    }
    for (i, nested) in m.nested_type.iter().enumerate() {
        check_message(nested, child(MESSAGE_NESTED_TYPE, i), commented, bad);
    }
    for (i, e) in m.enum_type.iter().enumerate() {
        check_enum(e, child(MESSAGE_ENUM_TYPE, i), commented, bad);
    }
}

#[test]
fn every_element_of_the_contract_is_commented_and_enums_start_unspecified() {
    let set = descriptor_set();
    let mut bad = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "brook.v1") {
        let commented: HashSet<Vec<i32>> = file
            .source_code_info
            .as_ref()
            .expect("protoc ran with --include_source_info")
            .location
            .iter()
            .filter(|l| !l.leading_comments().trim().is_empty())
            .map(|l| l.path.clone())
            .collect();
        for (i, m) in file.message_type.iter().enumerate() {
            check_message(m, vec![FILE_MESSAGE_TYPE, i as i32], &commented, &mut bad);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            check_enum(e, vec![FILE_ENUM_TYPE, i as i32], &commented, &mut bad);
        }
        for (i, s) in file.service.iter().enumerate() {
            if !commented.contains(&vec![FILE_SERVICE, i as i32]) {
                bad.push(format!("service {}", s.name()));
            }
            for (j, method) in s.method.iter().enumerate() {
                let path = vec![FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32];
                if !commented.contains(&path) {
                    bad.push(format!("rpc {}.{}", s.name(), method.name()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "lacking a comment or badly formed: {bad:#?}"
    );
}

#[test]
fn the_brook_service_offers_every_rpc_of_the_contract() {
    let set = descriptor_set();
    let service = set
        .file
        .iter()
        .flat_map(|f| f.service.iter().map(move |s| (f.package(), s)))
        .find(|(package, s)| format!("{package}.{}", s.name()) == brook_proto::SERVICE_NAME)
        .map(|(_, s)| s)
        .expect("service brook.v1.Brook is in the descriptor set");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        [
            "Produce",
            "ProduceStream",
            "Fetch",
            "Subscribe",
            "CreateTopic",
            "DeleteTopic",
            "ListTopics",
            "DescribeTopic",
            "ListGroups",
            "DescribeGroup",
            "CommitOffsets",
            "FetchOffsets",
            "Call",
            "Respond",
            "GetKey",
            "ProduceAtomic",
            "ListTransactions",
            "DescribeTransaction",
            "DescribeProducers",
            "AddPartitions",
            "AlterTopicConfig",
            "DeleteRecords",
            "DeleteGroup",
            "DeleteGroupOffsets",
            "SeekGroup",
            "ListAcls",
            "CreateAcls",
            "DeleteAcls",
            "ListUsers",
            "CreateUser",
            "DeleteUser",
            "SetPassword",
            "CreateToken",
            "ListTokens",
            "RevokeToken",
        ]
    );
    let streaming: Vec<(&str, bool, bool)> = service
        .method
        .iter()
        .filter(|m| m.client_streaming() || m.server_streaming())
        .map(|m| (m.name(), m.client_streaming(), m.server_streaming()))
        .collect();
    assert_eq!(
        streaming,
        [
            ("ProduceStream", true, true),
            ("Subscribe", false, true),
            ("Respond", true, true)
        ]
    );
}
